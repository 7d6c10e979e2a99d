"""Operator admin for commission rules, refunds, disputes, webhooks and the (read-only) ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.admin.audit import AuditedSettingAdmin
from payments.admin.base import (
    AmountColumn,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReadOnlyWithActionsAdmin,
    ReasonActionForm,
)
from payments.currencies import format_amount
from payments.models import (
    CommissionRule,
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PaymentAttempt,
    Refund,
    RefundLine,
    RefundRequest,
    WebhookEvent,
)


@admin.register(CommissionRule)
class CommissionRuleAdmin(AuditedSettingAdmin):
    """Rules are saved by ``commission_rule_save`` with who and why."""

    def save_service(self, obj: CommissionRule, by: Any, reason: str) -> CommissionRule:
        from payments.commission import commission_rule_save

        return commission_rule_save(rule=obj, by=by, reason=reason, via="admin")

    list_display = (
        "__str__",
        "scope",
        "percentage_bps",
        "fixed_fee_minor",
        "minimum_minor",
        "maximum_minor",
        "currency",
        "active_from",
        "active_until",
    )
    list_filter = ("scope", "currency")
    search_fields = ("name", "seller__display_name", "product__title", "category__name")
    raw_id_fields = ("seller", "product")
    list_select_related = ("seller", "product", "category")
    readonly_fields = ("preview",)
    fieldsets = (
        ("What this rule takes", {"fields": ("preview",)}),
        (None, {"fields": ("name", "scope", "category", "seller", "product")}),
        (
            "Commission per line",
            {
                "fields": (
                    "percentage_bps",
                    "fixed_fee_minor",
                    "minimum_minor",
                    "maximum_minor",
                    "currency",
                )
            },
        ),
        ("Active", {"fields": ("active_from", "active_until")}),
    )

    @admin.display(description="preview")
    def preview(self, rule: CommissionRule) -> str:
        return _preview(rule)


PREVIEW_PRICES = ("49.99", "10.00", "250.00")


def _preview(rule: CommissionRule) -> str:
    """The rule applied to a few line prices, as the checkout would split them."""
    from django.utils.html import format_html_join

    from payments.commission import line_split
    from payments.currencies import to_minor_units

    if rule.pk is None:
        return "Save the rule to see what it takes on a few example lines."
    currency = rule.currency or "USD"
    rows = []
    for price in PREVIEW_PRICES:
        minor = to_minor_units(price, currency)
        split = line_split(unit_price_minor=minor, quantity=1, rule=rule)
        rows.append(
            (
                format_amount(minor, currency),
                format_amount(split.commission_minor, currency),
                format_amount(split.seller_share_minor, currency),
            )
        )
    return format_html_join("\n", "<div>On a {} line: commission {}, seller {}</div>", rows)


class LedgerEntryInline(AmountColumn, ReadOnlyInline):
    model = LedgerEntry
    fields = ("account", "amount", "order_line")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("account__seller", "order_line")


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "idempotency_key", "reference_type", "reference_id")
    list_filter = ("kind", "created_at")
    search_fields = ("idempotency_key", "reference_id", "description")
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "currency", "balance")
    list_filter = ("kind", "currency")
    search_fields = ("seller__display_name", "seller__slug")
    list_select_related = ("seller",)

    @admin.display(description="balance", ordering="balance_minor")
    def balance(self, account: LedgerAccount) -> str:
        return format_amount(account.balance_minor, account.currency)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = ("created_at", "transaction", "account", "amount", "order_line")
    list_filter = ("account__kind", "currency", "transaction__kind")
    search_fields = ("transaction__idempotency_key", "account__seller__display_name")
    list_select_related = ("transaction", "account__seller", "order_line")


class RefundLineInline(ReadOnlyInline):
    model = RefundLine
    fields = ("order_line", "amount_minor", "seller_amount_minor", "commission_amount_minor")
    readonly_fields = fields
    select_related = ("order_line",)


@admin.register(Refund)
class RefundAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = ("__str__", "order", "amount", "status", "reason", "created_at", "completed_at")
    list_filter = ("status", "currency", "created_at")
    search_fields = ("order__id", "reason")
    list_select_related = ("order",)
    inlines = [RefundLineInline]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyWithActionsAdmin):
    list_display = ("received_at", "processor", "type", "event_id", "status", "attempts")
    list_filter = ("status", "processor", "type")
    search_fields = ("event_id", "type", "account")
    readonly_fields = (
        "processor",
        "event_id",
        "type",
        "account",
        "livemode",
        "status",
        "attempts",
        "last_error",
        "received_at",
        "processed_at",
        "payload",
        "headers",
    )
    actions = ("reprocess",)

    @admin.action(description="Process the selected failed events again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        from payments.webhooks import webhook_event_reprocess

        failed = list(
            queryset.filter(status=WebhookEvent.Status.FAILED).values_list("pk", flat=True)
        )
        for pk in failed:
            webhook_event_reprocess(webhook_event_id=pk)
        self.message_user(request, f"{len(failed)} failed event(s) queued again.")


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = (
        "__str__",
        "processor",
        "processor_payment_id",
        "status",
        "amount",
        "created_at",
    )
    list_filter = ("status", "processor")
    search_fields = ("processor_payment_id", "order__id", "idempotency_key")
    list_select_related = ("order",)


class RefundDecisionForm(ReasonActionForm):
    reason = forms.CharField(
        required=False,
        max_length=255,
        label="Why you approve or decline (kept on the request's page)",
    )


@admin.register(RefundRequest)
class RefundRequestAdmin(ReadOnlyWithActionsAdmin):
    """Operators decide refund requests like sellers do, through the same services,
    giving a reason that the request's page shows with who decided and when."""

    action_form = RefundDecisionForm
    list_display = (
        "__str__",
        "order_line",
        "reason",
        "status",
        "created_at",
        "decided_by",
        "decision_note",
    )
    list_filter = ("status", "created_at")
    search_fields = ("reason", "order_line__title", "requested_by__email")
    list_select_related = ("order_line", "decided_by")
    fieldsets = (
        (None, {"fields": ("order_line", "requested_by", "reason", "status", "created_at")}),
        ("Decision", {"fields": ("decided_by", "decided_at", "decision_note", "refund")}),
    )
    actions = ("approve", "decline")

    @admin.action(description="Approve and refund the selected requests (give a reason)")
    def approve(self, request: HttpRequest, queryset: QuerySet[RefundRequest]) -> None:
        from marketplace.errors import ApplicationError
        from payments.processors.base import ProcessorError
        from payments.refund_requests import refund_request_approve

        note = self.action_reason(request, "Give a reason for approving the selected requests.")
        if note is None:
            return
        done = 0
        for refund_request in queryset.filter(status=RefundRequest.Status.REQUESTED):
            try:
                refund_request_approve(request=refund_request, by=request.user, note=note)  # type: ignore[arg-type]
                done += 1
            except (ApplicationError, ProcessorError) as exc:
                self.message_user(request, f"{refund_request}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{done} request(s) approved and sent to the processor.")

    @admin.action(description="Decline the selected requests (give a reason)")
    def decline(self, request: HttpRequest, queryset: QuerySet[RefundRequest]) -> None:
        from marketplace.errors import ApplicationError
        from payments.refund_requests import refund_request_decline

        note = self.action_reason(request, "Give a reason for declining the selected requests.")
        if note is None:
            return
        done = 0
        for refund_request in queryset.filter(status=RefundRequest.Status.REQUESTED):
            try:
                refund_request_decline(request=refund_request, by=request.user, note=note)  # type: ignore[arg-type]
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{refund_request}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{done} request(s) declined.")


class DisputeLineInline(ReadOnlyInline):
    model = DisputeLine
    fields = ("order_line", "amount_minor", "seller_amount_minor", "commission_amount_minor")
    readonly_fields = fields
    select_related = ("order_line",)


@admin.register(Dispute)
class DisputeAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = ("__str__", "order", "amount", "reason", "status", "opened_at", "closed_at")
    list_filter = ("status", "processor", "currency")
    search_fields = ("processor_dispute_id", "order__id")
    list_select_related = ("order",)
    inlines = [DisputeLineInline]
