"""Seller plans and listing fees in the API.

Operators list, create and update plans and listing fees (``seller_plan_save``,
``listing_fee_save``: validated and audited with the caller and the optional
``reason``) and change any seller's plan. A seller reads their plan (current, the
plans offered to them) and their plan charges, and changes plan with
``POST /sellers/me/plan/ {"plan": <id>}`` (``seller_plan_change``, prorated). Amounts
are integers in minor units of the plan's or fee's currency; a refusal answers 4xx
with a problem body (the project's error handler), nothing saved.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Seller, User
from accounts.permissions import IsOperator, IsSellerOrOperator
from accounts.roles import seller_for
from marketplace.kernel.api.fields import StrictIntegerField, StrictIntegersMixin
from payments.api.serializers import change_reason_field
from payments.api.views import AuditedSettingViewSet
from payments.models import ListingFee, SellerPlan, SellerPlanCharge
from payments.revenue.listing_fees import listing_fee_save
from payments.revenue.plans import (
    plans_offered,
    seller_plan_change,
    seller_plan_current,
    seller_plan_save,
)


class SellerPlanSerializer(StrictIntegersMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    reason = change_reason_field()

    class Meta:
        model = SellerPlan
        fields = [
            "id",
            "reason",
            "name",
            "description",
            "currency",
            "monthly_fee_minor",
            "commission_bps",
            "is_offered",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class ListingFeeSerializer(StrictIntegersMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    reason = change_reason_field()

    class Meta:
        model = ListingFee
        fields = [
            "id",
            "reason",
            "scope",
            "category",
            "currency",
            "amount_minor",
            "listing_days",
            "active_from",
            "active_until",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class SellerPlanChargeSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    plan_name = serializers.CharField(source="plan.name", read_only=True)

    class Meta:
        model = SellerPlanCharge
        fields = [
            "id",
            "plan",
            "plan_name",
            "kind",
            "currency",
            "amount_minor",
            "period_start",
            "period_end",
            "created_at",
        ]
        read_only_fields = fields


class CurrentPlanSerializer(serializers.Serializer):  # type: ignore[type-arg]
    plan = SellerPlanSerializer(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    offered = SellerPlanSerializer(many=True)


class PlanChangeSerializer(serializers.Serializer):  # type: ignore[type-arg]
    plan = StrictIntegerField(min_value=1, help_text="The id of the plan to move to.")
    reason = change_reason_field()


class SellerPlanViewSet(AuditedSettingViewSet):
    """Seller plans (operators): a monthly fee and optionally a commission percentage."""

    serializer_class = SellerPlanSerializer
    permission_classes = [IsOperator]
    queryset = SellerPlan.objects.all()
    filterset_fields = ["currency", "is_offered"]

    def save_setting(self, instance: Any, reason: str) -> Any:
        return seller_plan_save(plan=instance, by=_user(self.request), reason=reason, via="api")


class ListingFeeViewSet(AuditedSettingViewSet):
    """Listing fees (operators): a fee per product listing period, default or per category."""

    serializer_class = ListingFeeSerializer
    permission_classes = [IsOperator]
    queryset = ListingFee.objects.all()
    filterset_fields = ["scope", "currency", "category"]

    def save_setting(self, instance: Any, reason: str) -> Any:
        return listing_fee_save(fee=instance, by=_user(self.request), reason=reason, via="api")


def _user(request: Request) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _my_seller(request: Request) -> Seller:
    seller = seller_for(request.user)
    if seller is None:
        raise exceptions.NotFound("You have no shop.")
    return seller


def _plan_body(seller: Seller) -> dict[str, Any]:
    choice = seller_plan_current(seller=seller)
    return CurrentPlanSerializer(
        {
            "plan": choice.plan if choice else None,
            "started_at": choice.started_at if choice else None,
            "offered": plans_offered(seller=seller),
        }
    ).data


def _change(request: Request, seller: Seller) -> Response:
    body = PlanChangeSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    plan = SellerPlan.objects.filter(pk=body.validated_data["plan"]).first()
    if plan is None:
        raise exceptions.ValidationError({"plan": ["No such plan."]})
    seller_plan_change(
        seller=seller,
        plan=plan,
        by=_user(request),
        reason=body.validated_data["reason"],
        via="api",
    )
    return Response(_plan_body(seller))


class MyPlanView(APIView):
    """The signed-in seller's plan and the plans offered to them; POST changes plan
    (prorated: the unused part of the current plan's fee is credited, the new plan's
    fee charged for the rest of the month)."""

    permission_classes = [IsSellerOrOperator]

    @extend_schema(responses=CurrentPlanSerializer)
    def get(self, request: Request) -> Response:
        return Response(_plan_body(_my_seller(request)))

    @extend_schema(request=PlanChangeSerializer, responses=CurrentPlanSerializer)
    def post(self, request: Request) -> Response:
        return _change(request, _my_seller(request))


class SellerPlanView(APIView):
    """Any seller's plan (operators); POST moves them to a plan (one not offered too)."""

    permission_classes = [IsOperator]

    @extend_schema(responses=CurrentPlanSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(_plan_body(get_object_or_404(Seller, slug=slug)))

    @extend_schema(request=PlanChangeSerializer, responses=CurrentPlanSerializer)
    def post(self, request: Request, slug: str) -> Response:
        return _change(request, get_object_or_404(Seller, slug=slug))


class MyPlanChargesView(generics.ListAPIView):  # type: ignore[type-arg]
    """The signed-in seller's plan fees charged and credited, newest first."""

    serializer_class = SellerPlanChargeSerializer
    permission_classes = [IsSellerOrOperator]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema, made without a user
            return SellerPlanCharge.objects.none()
        return SellerPlanCharge.objects.filter(seller=_my_seller(self.request)).select_related(
            "plan"
        )
