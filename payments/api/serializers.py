"""Serializers of the money API: shapes only; rules live in the services and models."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.validators import MaxValueValidator
from rest_framework import serializers

from accounts.models import Seller
from marketplace.api.serializers import MetadataReadField
from marketplace.kernel.api.expand import ExpandableList
from marketplace.kernel.api.fields import SlugRefField, StrictIntegersMixin
from payments.models import (
    CommissionRule,
    LedgerEntry,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    PayoutRun,
    Refund,
    RefundLine,
    RefundRequest,
)


def change_reason_field() -> serializers.CharField:
    """The optional "why" of a change to a money setting (write only)."""
    return serializers.CharField(
        max_length=255,
        write_only=True,
        required=False,
        default="",
        help_text="Why this change: kept in the setting's history with your name.",
    )


class SellerRefField(SlugRefField):
    """A seller named by their storefront slug."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=Seller.objects.all(), **kwargs)


class VolumeTierReadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One band of a rule's volume tiers (changed through ``.../tiers/``)."""

    from_minor = serializers.IntegerField(read_only=True)
    up_to_minor = serializers.IntegerField(read_only=True, allow_null=True)
    percentage_bps = serializers.IntegerField(read_only=True)


class CommissionRuleSerializer(StrictIntegersMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    seller = SellerRefField(required=False, allow_null=True)
    tiers = VolumeTierReadSerializer(many=True, read_only=True)

    reason = change_reason_field()

    class Meta:
        model = CommissionRule
        fields = [
            "id",
            "reason",
            "name",
            "scope",
            "category",
            "seller",
            "product",
            "percentage_bps",
            "fixed_fee_minor",
            "minimum_minor",
            "maximum_minor",
            "currency",
            "active_from",
            "active_until",
            "tiers",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class PayoutPolicySerializer(StrictIntegersMixin, serializers.ModelSerializer):  # type: ignore[type-arg]
    seller = SellerRefField(
        required=False, allow_null=True, default=None, help_text="None: the platform default."
    )

    reason = change_reason_field()

    class Meta:
        model = PayoutPolicy
        fields = [
            "id",
            "reason",
            "seller",
            "method",
            "schedule",
            "weekday",
            "month_day",
            "hold_days",
            "release_on_delivery",
            "reserve_bps",
            "reserve_days",
            "minimums",
            "approval_thresholds",
            "frozen",
            "frozen_reason",
        ]
        read_only_fields = ["id"]


class PayoutEntrySerializer(serializers.Serializer):  # type: ignore[type-arg]
    """One ledger entry a payout pays for, from the seller's side (positive adds)."""

    entry_id = serializers.IntegerField(source="entry.id")
    kind = serializers.CharField(source="entry.transaction.kind")
    description = serializers.CharField(source="entry.transaction.description")
    amount_minor = serializers.SerializerMethodField()
    order_line = serializers.IntegerField(source="entry.order_line_id", allow_null=True)
    created_at = serializers.DateTimeField(source="entry.created_at")

    def get_amount_minor(self, item: PayoutEntry) -> int:
        return -item.entry.amount_minor


class PayoutSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    seller: SlugRefField = SlugRefField(slug_field="slug", read_only=True)
    entries = ExpandableList(PayoutEntrySerializer, source="breakdown", id_attr="entry_id")
    metadata = MetadataReadField()

    class Meta:
        model = Payout
        fields = [
            "id",
            "seller",
            "currency",
            "amount_minor",
            "method",
            "period",
            "status",
            "failure_reason",
            "processor",
            "processor_payout_id",
            "bank_reference",
            "run",
            "created_at",
            "sent_at",
            "paid_at",
            "failed_at",
            "entries",
            "metadata",
        ]
        read_only_fields = fields


class PayoutDetailSerializer(PayoutSerializer):
    """The detail keeps ``breakdown`` (the entries whole, as ``expand[]=entries`` gives)."""

    breakdown = PayoutEntrySerializer(many=True, read_only=True)

    class Meta(PayoutSerializer.Meta):
        fields = [*PayoutSerializer.Meta.fields, "breakdown"]
        read_only_fields = fields


class PayoutActionRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class MarkPaidRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    bank_reference = serializers.CharField(max_length=100)


class PayoutRunRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    dry_run = serializers.BooleanField(default=False)
    sellers = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        default=list,
        max_length=1000,
        help_text="Seller slugs to pay now whatever their schedule; empty: everyone due today.",
    )


class PlannedPayoutSerializer(serializers.Serializer):  # type: ignore[type-arg]
    seller = serializers.CharField(source="seller.slug")
    currency = serializers.CharField()
    amount_minor = serializers.IntegerField()
    reserve_minor = serializers.IntegerField()
    period = serializers.CharField()
    status = serializers.CharField()
    method = serializers.CharField()
    payout = serializers.IntegerField(source="payout.pk", allow_null=True, default=None)


class SkippedSellerSerializer(serializers.Serializer):  # type: ignore[type-arg]
    seller = serializers.CharField(source="seller.slug")
    currency = serializers.CharField()
    reason = serializers.CharField()


class PayoutRunReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    run = serializers.IntegerField(source="run.pk", allow_null=True, default=None)
    dry_run = serializers.SerializerMethodField()
    holds_released = serializers.IntegerField()
    planned = PlannedPayoutSerializer(many=True)
    skipped = SkippedSellerSerializer(many=True)

    def get_dry_run(self, report: Any) -> bool:
        return report.run is None


class PayoutRunSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    started_by = serializers.EmailField(source="started_by.email", read_only=True, default=None)

    class Meta:
        model = PayoutRun
        fields = [
            "id",
            "trigger",
            "started_by",
            "started_at",
            "finished_at",
            "holds_released",
            "payouts_created",
            "skipped",
            "chunks_total",
            "chunks_done",
        ]
        read_only_fields = fields


class BalanceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    currency = serializers.CharField()
    pending = serializers.IntegerField(help_text="Earned, still in the hold period.")
    available = serializers.IntegerField(help_text="Paid in the next payout; negative: owed.")
    in_transit = serializers.IntegerField(help_text="Sent, not yet at the bank.")
    paid_out = serializers.IntegerField(help_text="Paid out, all time.")


class LedgerEntrySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    account_kind = serializers.CharField(source="account.kind")
    seller = serializers.CharField(source="account.seller.slug", default=None, allow_null=True)
    transaction_kind = serializers.CharField(source="transaction.kind")
    idempotency_key = serializers.CharField(source="transaction.idempotency_key")
    description = serializers.CharField(source="transaction.description")

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "transaction",
            "transaction_kind",
            "idempotency_key",
            "description",
            "account_kind",
            "seller",
            "currency",
            "amount_minor",
            "order_line",
            "created_at",
        ]
        read_only_fields = fields


class RefundRequestSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    order = serializers.IntegerField(source="order_line.order_id", read_only=True)
    seller = serializers.CharField(source="order_line.seller_order.seller.slug", read_only=True)
    amount_minor = serializers.IntegerField(source="order_line.refundable_minor", read_only=True)
    currency = serializers.CharField(source="order_line.order.currency", read_only=True)

    class Meta:
        model = RefundRequest
        fields = [
            "id",
            "order",
            "order_line",
            "seller",
            "amount_minor",
            "currency",
            "reason",
            "status",
            "decision_note",
            "decided_at",
            "refund",
            "created_at",
        ]
        read_only_fields = fields


class RefundLineSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """The part of a refund taken from one order line: the seller's and the commission's."""

    class Meta:
        model = RefundLine
        fields = [
            "id",
            "order_line",
            "amount_minor",
            "seller_amount_minor",
            "commission_amount_minor",
        ]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    lines = ExpandableList(RefundLineSerializer)
    metadata = MetadataReadField()

    class Meta:
        model = Refund
        fields = [
            "id",
            "order",
            "amount_minor",
            "currency",
            "status",
            "reason",
            "failure_reason",
            "created_at",
            "completed_at",
            "lines",
            "metadata",
        ]
        read_only_fields = fields


class RefundDecisionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


LAST_DAY = date(9998, 12, 31)


class StatementQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField(validators=[MaxValueValidator(LAST_DAY)])
    end = serializers.DateField(help_text="Included.", validators=[MaxValueValidator(LAST_DAY)])
    currency = serializers.RegexField(r"^[A-Z]{3}$")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["start"] > data["end"]:
            raise serializers.ValidationError("The start must not be after the end.")
        if (data["end"] - data["start"]).days > 366:
            raise serializers.ValidationError("A statement covers at most a year.")
        return data


class StatementSerializer(serializers.Serializer):  # type: ignore[type-arg]
    seller = serializers.CharField(source="seller.slug")
    currency = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    opening = serializers.IntegerField()
    sales = serializers.IntegerField()
    commission = serializers.IntegerField()
    commission_tax = serializers.IntegerField()
    earnings = serializers.IntegerField()
    refunds = serializers.IntegerField()
    fees = serializers.IntegerField()
    disputes = serializers.IntegerField()
    payouts = serializers.IntegerField()
    plan_fees = serializers.IntegerField()
    listing_fees = serializers.IntegerField()
    adjustments = serializers.IntegerField()
    closing = serializers.IntegerField()


class RevenueQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    period = serializers.ChoiceField(choices=["day", "week", "month"], default="day")
    start = serializers.DateField(required=False, validators=[MaxValueValidator(LAST_DAY)])
    end = serializers.DateField(
        required=False, help_text="Included.", validators=[MaxValueValidator(LAST_DAY)]
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise serializers.ValidationError("The start must not be after the end.")
        return data


class RevenueRowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    period = serializers.DateField()
    currency = serializers.CharField()
    sales = serializers.IntegerField()
    refunds = serializers.IntegerField()
    commission = serializers.IntegerField()
    processor_fees = serializers.IntegerField()
    plan_fees = serializers.IntegerField()
    listing_fees = serializers.IntegerField()
    service_fees = serializers.IntegerField()
    payouts = serializers.IntegerField()
    net = serializers.IntegerField()


class ReconciliationQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    start = serializers.DateField(validators=[MaxValueValidator(LAST_DAY)])
    end = serializers.DateField(
        help_text="Included; at most 31 days after the start.",
        validators=[MaxValueValidator(LAST_DAY)],
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["start"] > data["end"]:
            raise serializers.ValidationError("The start must not be after the end.")
        if (data["end"] - data["start"]).days > 31:
            raise serializers.ValidationError("Reconcile at most 31 days at a time.")
        return data


class DifferenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    movement = serializers.CharField()
    processor_id = serializers.CharField()
    currency = serializers.CharField()
    ours = serializers.IntegerField(allow_null=True)
    theirs = serializers.IntegerField(allow_null=True)
    note = serializers.CharField()


class BalanceTransactionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.CharField()
    type = serializers.CharField()
    amount_minor = serializers.IntegerField()
    fee_minor = serializers.IntegerField()
    currency = serializers.CharField()
    processor_object = serializers.CharField(source="source")
    created = serializers.DateTimeField()


class ReconciliationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    matched = serializers.IntegerField()
    ours_total = serializers.DictField(child=serializers.IntegerField())
    theirs_total = serializers.DictField(child=serializers.IntegerField())
    differences = DifferenceSerializer(many=True)
    outside_scope = BalanceTransactionSerializer(many=True)
