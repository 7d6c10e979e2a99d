"""Webhook endpoints for integrators (docs/api.md, "Webhooks"). Sellers: their own,
for their own events; operators: all, and endpoints for every event. Each write
calls one service of ``payments.integrations.webhooks``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import IsSellerOrOperator
from accounts.roles import is_operator
from marketplace.kernel.api.idempotency import IdempotentMixin
from payments.api import webhook_serializers as s
from payments.integrations.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from payments.models import WebhookEndpoint

# What an ``Idempotency-Key`` record keeps in place of a secret.
NOT_STORED = "whsec_not_stored"


def _actor(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


class WebhookEndpointViewSet(
    IdempotentMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Webhook endpoints. The signing secret is shown when the endpoint is created and
    when it is rotated; lists and reads show only its end (``secret_hint``)."""

    serializer_class = s.WebhookEndpointSerializer
    permission_classes = [IsSellerOrOperator]
    ordering = ["-created_at", "-id"]
    filterset_fields = ["is_active"]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Any:
        """An answer that shows the secret is kept for ``Idempotency-Key`` replays
        without it (the database never holds a secret in clear text); a replay shows
        the endpoint's secret as it is now, decrypted again."""
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        secret = data.get("secret")
        if secret is None:
            return super().finalize_response(request, response, *args, **kwargs)
        if secret == NOT_STORED and response.get("Idempotent-Replayed") == "true":
            endpoint = self.get_queryset().filter(pk=int(data.get("id") or 0)).first()
            data["secret"] = endpoint.secret if endpoint else ""
            return super().finalize_response(request, response, *args, **kwargs)
        data["secret"] = NOT_STORED
        try:
            return super().finalize_response(request, response, *args, **kwargs)
        finally:
            data["secret"] = secret

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        endpoints = WebhookEndpoint.objects.select_related("seller")
        if is_operator(self.request.user):
            return endpoints
        return endpoints.filter(owner=self.request.user.pk)

    def get_serializer_class(self) -> Any:
        if self.action == "create":
            return s.WebhookEndpointWithSecretSerializer
        return s.WebhookEndpointSerializer

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = webhook_endpoint_create(
            owner=_actor(self.request),
            url=data["url"],
            events=data["events"],
            description=data.get("description", ""),
            seller=data.get("seller"),
        )

    def perform_update(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = webhook_endpoint_update(
            endpoint=serializer.instance,
            url=data.get("url"),
            events=data.get("events"),
            description=data.get("description"),
            is_active=data.get("is_active"),
        )

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        """Deleted with its deliveries: what was queued for it is not sent."""
        webhook_endpoint_delete(endpoint=instance)

    @extend_schema(
        request=s.SecretRotationRequestSerializer, responses=s.WebhookEndpointWithSecretSerializer
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        """A new signing secret (in the answer, the only time it is shown); the old one
        keeps signing next to it for ``expires_in_hours`` (default 24, at most 168)."""
        body = s.SecretRotationRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, _ = webhook_endpoint_secret_rotate(
            endpoint=self.get_object(), expires_in_hours=body.validated_data["expires_in_hours"]
        )
        return Response(s.WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(request=None, responses=s.WebhookDeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        """Send a ``ping`` now; the answer is in the returned delivery's log."""
        delivery = webhook_endpoint_test(endpoint=self.get_object())
        return Response(s.WebhookDeliverySerializer(delivery).data)

    @extend_schema(responses=s.WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str) -> Response:
        """The endpoint's deliveries, newest first, with every attempt's answer."""
        deliveries = (
            self.get_object().deliveries.prefetch_related("log").order_by("-created_at", "-id")
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)
