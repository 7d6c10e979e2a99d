"""``GET /api/v1/events/``: the events the outbound webhooks send, kept 30 days, to
catch up on missed deliveries, and ``POST /events/{id}/resend/`` to one endpoint.
Operators see platform-wide events; a seller sees their own seller's part (another
seller's event, or a platform-wide one, is a 404)."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.permissions import IsSellerOrOperator
from marketplace.kernel.api.filters import UtcIsoDateTimeFilter
from marketplace.kernel.api.idempotency import IdempotentMixin
from payments.api import webhook_serializers as s
from payments.integrations.events import event_resend, events_visible_to
from payments.models import Event

OBJECT_TYPES = [("order", "order"), ("refund", "refund"), ("payout", "payout")]


class IdFilter(django_filters.Filter):
    """A database id: a whole number that fits a bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, min_value=0, max_value=2**63 - 1, **kwargs)


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(
        method="filter_type",
        max_length=40,
        help_text="An event type (order.paid), or a family with a star (payout.*).",
    )
    object_type = django_filters.ChoiceFilter(choices=OBJECT_TYPES)
    object_id = IdFilter(field_name="object_id")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["type", "object_type", "object_id"]

    def filter_type(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        if value.endswith(".*"):
            return queryset.filter(type__startswith=value[:-1])
        return queryset.filter(type=value)


class EventViewSet(IdempotentMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Events, newest first. Each has the ``id`` of the webhook deliveries that carried
    it and the same ``data`` (a seller's part for a seller)."""

    queryset = Event.objects.none()  # the model, for the schema; rows: get_queryset
    serializer_class = s.EventSerializer
    permission_classes = [IsSellerOrOperator]
    filterset_class = EventFilter
    ordering = ["-id"]
    lookup_field = "event_id"
    lookup_url_kwarg = "pk"
    cursor_id_field = "event_id"

    def get_queryset(self) -> QuerySet[Event]:
        user = self.request.user
        assert isinstance(user, User)
        events = Event.objects.filter(events_visible_to(user)).select_related("seller")
        return events.order_by("-id")

    @extend_schema(request=s.EventResendRequestSerializer, responses=s.WebhookDeliverySerializer)
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str) -> Response:
        """Queue the event again to one of your endpoints (operators: any) that wants
        its type and may see it; returns the delivery, pending."""
        body = s.EventResendRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)
        delivery = event_resend(
            actor=user, event=self.get_object(), endpoint_id=body.validated_data["endpoint"]
        )
        return Response(s.WebhookDeliverySerializer(delivery).data)
