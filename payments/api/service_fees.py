"""Operators' API for the customer service fee and a commission rule's volume tiers.

Each write calls one service (``service_fee_save``, ``volume_tiers_save``) with the
caller and the optional ``reason``, so every change is validated and recorded; a bad
value answers 400 with the field named (the project's error handler), nothing saved.
Amounts are integers in minor units of the fee's or the rule's currency.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.permissions import IsOperator
from marketplace.kernel.api.fields import StrictIntegerField, StrictIntegersMixin
from payments.api.serializers import change_reason_field
from payments.api.views import AuditedSettingViewSet
from payments.models import CommissionRule, ServiceFee, VolumeTier
from payments.revenue.service_fees import service_fee_save
from payments.revenue.volume_tiers import volume_tiers_save


class ServiceFeeSerializer(StrictIntegersMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    reason = change_reason_field()

    class Meta:
        model = ServiceFee
        fields = [
            "id",
            "reason",
            "name",
            "currency",
            "percentage_bps",
            "fixed_fee_minor",
            "active_from",
            "active_until",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class ServiceFeeViewSet(AuditedSettingViewSet):
    """Customer service fees (operators): a percentage and/or a fixed amount per order
    in one currency; the latest started active fee of the order's currency applies."""

    serializer_class = ServiceFeeSerializer
    permission_classes = [IsOperator]
    queryset = ServiceFee.objects.order_by("currency", "-active_from", "-id")
    filterset_fields = ["currency"]

    def save_setting(self, instance: Any, reason: str) -> Any:
        user = self.request.user
        assert isinstance(user, User)
        return service_fee_save(fee=instance, by=user, reason=reason, via="api")


class VolumeTierSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    from_minor = StrictIntegerField(min_value=0, max_value=2**63 - 1)
    up_to_minor = StrictIntegerField(
        min_value=1, max_value=2**63 - 1, allow_null=True, required=False, default=None
    )
    percentage_bps = StrictIntegerField(min_value=0, max_value=10_000)

    class Meta:
        model = VolumeTier
        fields = ["from_minor", "up_to_minor", "percentage_bps"]


class VolumeTiersRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    tiers = VolumeTierSerializer(many=True, allow_empty=True, max_length=50)  # type: ignore[call-arg]
    reason = change_reason_field()


class VolumeTiersResponseSerializer(serializers.Serializer):  # type: ignore[type-arg]
    rule = serializers.IntegerField()
    currency = serializers.CharField()
    tiers = VolumeTierSerializer(many=True)


def _tiers_body(rule: CommissionRule) -> dict[str, Any]:
    tiers = VolumeTier.objects.filter(rule=rule).order_by("from_minor")
    return {
        "rule": rule.pk,
        "currency": rule.currency,
        "tiers": VolumeTierSerializer(tiers, many=True).data,
    }


class CommissionRuleTiersView(APIView):
    """A commission rule's volume tiers (operators): GET reads them, PUT replaces them
    all (an empty list removes them), checked by ``volume_tiers_validate``: from 0, no
    gap, no overlap, the last without ``up_to_minor``, the rule with a currency."""

    permission_classes = [IsOperator]

    @extend_schema(responses=VolumeTiersResponseSerializer)
    def get(self, request: Request, pk: int) -> Response:
        rule = get_object_or_404(CommissionRule, pk=pk)
        return Response(_tiers_body(rule))

    @extend_schema(request=VolumeTiersRequestSerializer, responses=VolumeTiersResponseSerializer)
    def put(self, request: Request, pk: int) -> Response:
        rule = get_object_or_404(CommissionRule, pk=pk)
        body = VolumeTiersRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)
        tiers = [
            (tier["from_minor"], tier.get("up_to_minor"), tier["percentage_bps"])
            for tier in body.validated_data["tiers"]
        ]
        with transaction.atomic():
            volume_tiers_save(
                rule=rule, tiers=tiers, by=user, reason=body.validated_data["reason"], via="api"
            )
        return Response(_tiers_body(rule))
