"""``Location`` of a 201: the new resource's own API address, or none.

DRF's ``CreateModelMixin`` copies the serializer's ``url`` field (``URL_FIELD_NAME``)
into ``Location``; for a webhook endpoint that is the receiver's address, so a client
following it sent its token to someone else's host. Settings point ``URL_FIELD_NAME``
at ``api_url``, a field no serializer has, and this mixin (on every write view through
:class:`~marketplace.kernel.api.idempotency.IdempotentMixin`) sets ``Location`` from the
view's own detail route when the view's ``create`` made the object, and drops any
other ``Location`` of a 201.
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from rest_framework.request import Request
from rest_framework.response import Response


def created_location(request: Request, view: Any, response: Response) -> str | None:
    """The detail address of the object ``view.create`` answered with, if it has one."""
    basename = getattr(view, "basename", None)
    data = response.data
    if getattr(view, "action", None) != "create" or not basename or not isinstance(data, dict):
        return None
    lookup_field = getattr(view, "lookup_field", "pk")
    value = data.get("id" if lookup_field == "pk" else lookup_field)
    if value is None:
        return None
    lookup_kwarg = getattr(view, "lookup_url_kwarg", None) or lookup_field
    match = getattr(request, "resolver_match", None)
    namespace = f"{match.namespace}:" if match is not None and match.namespace else ""
    try:
        return reverse(f"{namespace}{basename}-detail", kwargs={lookup_kwarg: value})
    except NoReverseMatch:
        return None


class CreatedLocationMixin:
    """For a DRF view: a 201's ``Location`` is the created resource's API address."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        if getattr(response, "status_code", None) == 201:
            location = created_location(request, self, response)
            if location:
                response["Location"] = location
            elif response.has_header("Location"):
                del response["Location"]
        return response
