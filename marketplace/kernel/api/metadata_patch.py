"""PATCH of ``metadata``, the one field an integrator may change on orders, payouts
and refunds: keys merge in, an empty string removes a key, nothing else changes.

A view set names the service that stores the change (``metadata_service``); the
service records who changed it and how. Who may PATCH is the view set's
permissions' business (``partial_update`` is the action).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": 50,
        "additionalProperties": {"type": "string", "maxLength": 500, "nullable": True},
        "description": "Keys to set; a key with an empty string (or null) is removed. "
        "At most 50 keys of at most 40 characters (no [ or ]), values of at most 500.",
    }
)
class MetadataField(serializers.JSONField):
    """``metadata`` in a request: passed as given to the service, whose merge
    (``payments.integrations.metadata.metadata_merge``) checks the limits and names the
    key at fault (``metadata[key]``)."""


class MetadataUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A PATCH of an order, refund or payout: only ``metadata`` can change."""

    metadata = MetadataField()

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - {"metadata"})
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Only metadata can be changed here."]})
        return data


class MetadataPatchMixin:
    """``partial_update`` validates ``{"metadata": {...}}``, passes it to
    ``metadata_save`` and answers the resource as a read shows it."""

    def metadata_save(self, request: Request, obj: Model, metadata: dict[str, str]) -> None:
        raise NotImplementedError  # pragma: no cover - each view set names its service

    def partial_update(self, request: Request, pk: str) -> Response:
        view: Any = self
        body = MetadataUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.metadata_save(request, view.get_object(), body.validated_data["metadata"])
        return Response(view.get_serializer(view.get_queryset().get(pk=pk)).data)
