"""Operator admin for commission rules, refunds, disputes, webhooks and the (read-only) ledger."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, register_converter, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timesince import timesince

from marketplace.kernel.currencies import exponent, format_amount, to_minor_units
from marketplace.kernel.errors import ApplicationError
from marketplace.models import SellerOrder
from payments.admin.audit import AuditedSettingAdmin, HistoryInline
from payments.admin.base import (
    AmountColumn,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReadOnlyWithActionsAdmin,
    percent_text,
)
from payments.admin.rule_forms import CommissionRuleForm, VolumeTierForm, VolumeTierFormSet
from payments.collection.refund_requests import (
    refund_request_approve,
    refund_request_decline,
)
from payments.collection.refunds import refund_preview
from payments.collection.webhooks import webhook_event_reprocess
from payments.models import (
    AuditRecord,
    Clawback,
    CommissionRule,
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PaymentAttempt,
    PayoutEntry,
    Refund,
    RefundLine,
    RefundRequest,
    VolumeTier,
    WebhookEvent,
)
from payments.models.ledger import LedgerAccountQuerySet
from payments.processors.base import ProcessorError
from payments.revenue.commission import commission_rule_save, line_split
from payments.revenue.volume_tiers import volume_tiers_save


class VolumeTierInline(admin.TabularInline):  # type: ignore[type-arg]
    """The rule's volume tiers, as money and percent; saved all at once by
    ``volume_tiers_save`` (the rule admin's ``save_formset``), never one by one."""

    model = VolumeTier
    form = VolumeTierForm
    formset = VolumeTierFormSet
    fields = ("sales_from", "sales_up_to", "percentage")
    # Three empty rows: enough for a set of tiers without the "add another" script,
    # which the site's content security policy (no inline styles) can stop.
    extra = 3
    verbose_name = "volume tier"
    verbose_name_plural = (
        "Volume tiers (optional): the percentage by the seller's sales over the last 30 days"
    )


@admin.register(CommissionRule)
class CommissionRuleAdmin(AuditedSettingAdmin):
    """Rules are saved by ``commission_rule_save`` with who and why. The percentage is
    typed as a percent and the fixed fee, minimum and maximum as money in the rule's
    currency (``rule_forms``); the list shows them so too. Its volume tiers are an
    inline, saved by ``volume_tiers_save`` with the same reason."""

    form = CommissionRuleForm
    inlines = (VolumeTierInline,)

    def save_service(self, obj: CommissionRule, by: Any, reason: str) -> CommissionRule:

        return commission_rule_save(rule=obj, by=by, reason=reason, via="admin")

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if not isinstance(formset, VolumeTierFormSet):
            super().save_formset(request, form, formset, change)
            return

        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.tier_specs is not None:
            volume_tiers_save(
                rule=form.instance,
                tiers=formset.tier_specs,
                by=cast(Any, request.user),
                reason=form.cleaned_data["change_reason"],
                via="admin",
            )

    list_display = (
        "__str__",
        "scope",
        "percentage",
        "fixed_fee",
        "minimum",
        "maximum",
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
            {"fields": ("percentage", "currency", "fixed_fee", "minimum", "maximum")},
        ),
        ("Active", {"fields": ("active_from", "active_until")}),
    )

    @admin.display(description="preview")
    def preview(self, rule: CommissionRule) -> str:
        return _preview(rule)

    @admin.display(description="percentage", ordering="percentage_bps")
    def percentage(self, rule: CommissionRule) -> str:
        return percent_text(rule.percentage_bps)

    def _money(self, rule: CommissionRule, minor: int | None) -> str:
        if minor is None or not rule.currency:
            return "—"  # a rule without a currency has no amounts
        return format_amount(minor, rule.currency)

    @admin.display(description="fixed fee", ordering="fixed_fee_minor")
    def fixed_fee(self, rule: CommissionRule) -> str:
        return self._money(rule, rule.fixed_fee_minor or None)

    @admin.display(description="minimum", ordering="minimum_minor")
    def minimum(self, rule: CommissionRule) -> str:
        return self._money(rule, rule.minimum_minor)

    @admin.display(description="maximum", ordering="maximum_minor")
    def maximum(self, rule: CommissionRule) -> str:
        return self._money(rule, rule.maximum_minor)


PREVIEW_PRICES = ("49.99", "10.00", "250.00")


def _preview(rule: CommissionRule) -> str:
    """The rule applied to a few line prices, as the checkout would split them."""
    from django.utils.html import format_html_join

    if rule.pk is None:
        return "Save the rule to see what it takes on a few example lines."
    currency = rule.currency or "USD"
    # A currency without decimals (yen) previews lines of ¥4,999, ¥1,000 and ¥25,000.
    scale = Decimal(1) if exponent(currency) else Decimal(100)
    rows = []
    for price in PREVIEW_PRICES:
        minor = to_minor_units(Decimal(price) * scale, currency)
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


def _ids_as_text(queryset: QuerySet[Any], field: str = "pk") -> QuerySet[Any]:
    """``field`` of each row as text: ``reference_id`` is text (ids of several tables)."""
    texts: QuerySet[Any] = queryset.annotate(as_text=Cast(field, CharField())).values("as_text")
    return texts


def order_ledger_transactions(order_id: int) -> QuerySet[LedgerTransaction]:
    """Every ledger transaction about an order, in one query: its payment capture and
    processor fee, its duplicate payments' fees, the hold releases of its seller
    orders, its refunds and their reversals, its disputes, the payouts that paid its
    lines, the clawbacks for its refunds and disputes, and anything else with an entry
    on one of its lines."""
    refunds = Refund.objects.filter(order_id=order_id)
    disputes = Dispute.objects.filter(order_id=order_id)
    clawbacks = Clawback.objects.filter(
        Q(reason_type="refund", reason_id__in=refunds.values("pk"))
        | Q(reason_type="dispute", reason_id__in=disputes.values("pk"))
    )
    payouts = PayoutEntry.objects.filter(entry__order_line__order_id=order_id)
    return LedgerTransaction.objects.filter(
        Q(reference_type="order", reference_id=str(order_id))
        | Q(
            reference_type="seller_order",
            reference_id__in=_ids_as_text(SellerOrder.objects.filter(order_id=order_id)),
        )
        | Q(
            reference_type="payment_attempt",
            reference_id__in=_ids_as_text(PaymentAttempt.objects.filter(order_id=order_id)),
        )
        | Q(reference_type="refund", reference_id__in=_ids_as_text(refunds))
        | Q(reference_type="dispute", reference_id__in=_ids_as_text(disputes))
        | Q(reference_type="payout", reference_id__in=_ids_as_text(payouts, "payout_id"))
        | Q(reference_type="clawback", reference_id__in=_ids_as_text(clawbacks))
        | Q(
            pk__in=LedgerEntry.objects.filter(order_line__order_id=order_id).values(
                "transaction_id"
            )
        )
    )


# "order 12", "order #12", "order:12" or "#12": every transaction of that order.
ORDER_SEARCH = re.compile(r"^\s*(?:order\s*[#:]?|#)\s*(\d+)\s*$", re.IGNORECASE)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "description",
        "idempotency_key",
        "reference_type",
        "reference_id",
    )
    list_filter = ("kind", "created_at")
    search_fields = ("idempotency_key", "reference_id", "description")
    search_help_text = (
        "Search keys, references and descriptions. “order 12” finds every transaction of "
        "order #12: payment, fee, hold releases, refunds, disputes, and the payouts and "
        "clawbacks covering its lines; a plain number finds those too."
    )
    date_hierarchy = "created_at"
    inlines = [LedgerEntryInline]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        match = ORDER_SEARCH.match(search_term)
        if match:
            return queryset.filter(pk__in=order_ledger_transactions(int(match[1]))), False
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip().isdigit():
            order = queryset.filter(pk__in=order_ledger_transactions(int(search_term)))
            results = results | order
        return results, may_have_duplicates


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "kind", "currency", "balance")
    list_filter = ("kind", "currency")
    search_fields = ("seller__display_name", "seller__slug")
    list_select_related = ("seller",)
    # A platform account's stored balance is 0; its balance is the sum of its shards.
    shown_instead = {"balance_minor": "balance"}

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerAccount]:
        return cast(LedgerAccountQuerySet, super().get_queryset(request)).with_balance()

    @admin.display(description="balance", ordering="balance")
    def balance(self, account: LedgerAccount) -> str:
        return format_amount(account.balance, account.currency)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = ("created_at", "transaction", "account", "amount", "order_line")
    list_filter = ("account__kind", "currency", "transaction__kind")
    search_fields = ("transaction__idempotency_key", "account__seller__display_name")
    list_select_related = ("transaction", "account__seller", "order_line")


class PartsColumns:
    """A refund's or dispute's line: its amount, the seller's part and the commission's,
    in the currency of its parent (``parent``: the refund or dispute field)."""

    parent = ""

    def _money(self, row: Any, minor: int) -> str:
        return format_amount(minor, getattr(row, self.parent).currency)

    @admin.display(description="amount")
    def amount(self, row: Any) -> str:
        return self._money(row, row.amount_minor)

    @admin.display(description="seller's part")
    def seller_part(self, row: Any) -> str:
        return self._money(row, row.seller_amount_minor)

    @admin.display(description="commission's part")
    def commission_part(self, row: Any) -> str:
        return self._money(row, row.commission_amount_minor)


class RefundLineInline(PartsColumns, ReadOnlyInline):
    model = RefundLine
    parent = "refund"
    fields = ("order_line", "amount", "seller_part", "commission_part")
    readonly_fields = fields
    select_related = ("order_line", "refund")


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


class ConfirmForm(forms.Form):
    """The reason box of a confirmation page, with the page's one-time key."""

    reason = forms.CharField(
        max_length=255,
        label="Reason (required; kept in the history with your name)",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "Give a reason. Nothing was changed."},
    )
    confirmation = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)


def confirm_context(
    admin_site: Any, request: HttpRequest, opts: Any, **context: Any
) -> dict[str, Any]:
    """What ``admin/payments/refund_confirm.html`` needs besides the page's own figures."""
    return {**admin_site.each_context(request), "opts": opts, **context}


class DecisionConverter:
    """``approve`` or ``decline`` in a URL; anything else is left to the admin's own
    URLs (``change``, ``delete``, ``history``)."""

    regex = "approve|decline"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(DecisionConverter, "decision")


@admin.register(RefundRequest)
class RefundRequestAdmin(ReadOnlyWithActionsAdmin):
    """Customers' refund requests. Operators decide them like sellers do, through the
    same services, on a confirmation page that shows the effect first (what the
    customer gets back, what the seller loses, the commission returned, whether the
    seller was paid out already) and asks why; the request's page shows who decided,
    when and why."""

    # What an operator decides on first; the table scrolls sideways for the rest.
    list_display = (
        "number",
        "order_link",
        "status",
        "amount",
        "age",
        "decide",
        "short_reason",
        "customer",
        "seller",
    )
    list_filter = ("status", "created_at")
    search_fields = (
        "reason",
        "order_line__title",
        "requested_by__email",
        "order_line__seller_order__seller__display_name",
        "=order_line__order__id",
    )
    list_select_related = (
        "order_line__order",
        "order_line__seller_order__seller",
        "requested_by",
        "refund",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "order_link",
                    "order_line",
                    "requested_by",
                    "amount",
                    "reason",
                    "status",
                    "created_at",
                )
            },
        ),
        ("Decision", {"fields": ("decided_by", "decided_at", "decision_note", "refund")}),
    )
    readonly_fields = ("order_link", "amount")
    inlines = [HistoryInline]
    actions = ("approve", "decline")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RefundRequest]:
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = tuple(super().get_list_display(request))
        if self.has_operate_permission(request):
            return shown
        return tuple(name for name in shown if name != "decide")

    def get_urls(self) -> list[Any]:
        own = [
            path(
                "<int:pk>/<decision:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="payments_refundrequest_decide",
            )
        ]
        return own + super().get_urls()

    @admin.display(description="request", ordering="pk")
    def number(self, refund_request: RefundRequest) -> str:
        return f"#{refund_request.pk}"

    @admin.display(description="reason")
    def short_reason(self, refund_request: RefundRequest) -> str:
        return Truncator(refund_request.reason).chars(60)

    @admin.display(description="order", ordering="order_line__order_id")
    def order_link(self, refund_request: RefundRequest) -> str:
        url = reverse("admin:marketplace_order_change", args=[refund_request.order_line.order_id])
        return format_html('<a href="{}">Order #{}</a>', url, refund_request.order_line.order_id)

    @admin.display(description="customer", ordering="requested_by__email")
    def customer(self, refund_request: RefundRequest) -> str:
        return str(refund_request.requested_by.email)

    @admin.display(description="seller", ordering="order_line__seller_order__seller__display_name")
    def seller(self, refund_request: RefundRequest) -> str:
        return str(refund_request.order_line.seller_order.seller.display_name)

    @admin.display(description="amount")
    def amount(self, refund_request: RefundRequest) -> str:
        """What the request refunds: what is left of the line while it is open, what
        was refunded once approved."""
        line = refund_request.order_line
        if refund_request.refund is not None:
            minor = refund_request.refund.amount_minor
        else:
            minor = line.refundable_minor
        return format_amount(minor, line.order.currency)

    @admin.display(description="age", ordering="created_at")
    def age(self, refund_request: RefundRequest) -> str:
        return timesince(refund_request.created_at, depth=1)

    @admin.display(description="decide")
    def decide(self, refund_request: RefundRequest) -> str:
        if refund_request.status != RefundRequest.Status.REQUESTED:
            return "—"
        return format_html(
            '<a href="{}">Approve…</a> · <a href="{}">Decline…</a>',
            reverse("admin:payments_refundrequest_decide", args=[refund_request.pk, "approve"]),
            reverse("admin:payments_refundrequest_decide", args=[refund_request.pk, "decline"]),
        )

    def _confirm_page(
        self, request: HttpRequest, queryset: QuerySet[RefundRequest], decision: str
    ) -> HttpResponse | None:
        chosen = list(queryset.values_list("pk", flat=True)[:2])
        if len(chosen) != 1:
            self.message_user(
                request,
                "Choose one request: each decision is confirmed on its own page, which "
                "shows what it does. Nothing was changed.",
                level=messages.ERROR,
            )
            return None
        url = reverse("admin:payments_refundrequest_decide", args=[chosen[0], decision])
        return HttpResponseRedirect(url)

    @admin.action(description="Approve the selected request… (shows the refund first)")
    def approve(
        self, request: HttpRequest, queryset: QuerySet[RefundRequest]
    ) -> HttpResponse | None:
        return self._confirm_page(request, queryset, "approve")

    @admin.action(description="Decline the selected request… (asks for a reason)")
    def decline(
        self, request: HttpRequest, queryset: QuerySet[RefundRequest]
    ) -> HttpResponse | None:
        return self._confirm_page(request, queryset, "decline")

    def decide_view(self, request: HttpRequest, pk: int, decision: str) -> HttpResponse:
        """GET: what approving (or declining) does; POST with a reason: do it, through
        ``refund_request_approve`` or ``refund_request_decline``."""

        if not self.has_operate_permission(request):
            raise PermissionDenied
        refund_request = get_object_or_404(self.get_queryset(request), pk=pk)
        line = refund_request.order_line
        back = reverse("admin:payments_refundrequest_changelist")
        if refund_request.status != RefundRequest.Status.REQUESTED:
            self.message_user(
                request,
                f"{refund_request} was {refund_request.get_status_display().lower()} already. "
                "Nothing was changed.",
                level=messages.WARNING,
            )
            return HttpResponseRedirect(back)
        form = ConfirmForm(request.POST or None, initial={"confirmation": uuid.uuid4().hex})
        preview, refusal = None, ""
        if decision == "approve":
            try:
                preview = refund_preview(
                    order=line.order, line_amounts={line.pk: line.refundable_minor}
                )
            except ApplicationError as exc:
                refusal = f"It cannot be approved: {exc}"
        if request.method == "POST" and form.is_valid() and not refusal:
            note = form.cleaned_data["reason"]
            try:
                if decision == "approve":
                    refund = refund_request_approve(
                        request=refund_request,
                        by=request.user,  # type: ignore[arg-type]
                        note=note,
                        via=AuditRecord.Via.ADMIN,
                    )
                    done = (
                        f"{refund_request} approved: refund #{refund.pk} of "
                        f"{format_amount(refund.amount_minor, refund.currency)} sent to the "
                        "processor."
                    )
                else:
                    refund_request_decline(
                        request=refund_request,
                        by=request.user,  # type: ignore[arg-type]
                        note=note,
                        via=AuditRecord.Via.ADMIN,
                    )
                    done = f"{refund_request} declined; the customer and the seller are emailed."
            except (ApplicationError, ProcessorError) as exc:
                refusal = f"{exc} Nothing was changed."
            else:
                self.message_user(request, done, level=messages.SUCCESS)
                return HttpResponseRedirect(back)
        verb = "Approve" if decision == "approve" else "Decline"
        context = confirm_context(
            self.admin_site,
            request,
            self.opts,
            title=f"{verb} refund request #{refund_request.pk}?",
            refund_request=refund_request,
            order=line.order,
            decision=decision,
            preview=preview,
            refusal=refusal,
            form=form,
            confirm_label=(
                f"Approve and refund {format_amount(line.refundable_minor, line.order.currency)}"
                if decision == "approve"
                else "Decline the request"
            ),
            cancel_url=back,
            breadcrumb_url=back,
            breadcrumb_label="Refund requests",
        )
        return TemplateResponse(request, "admin/payments/refund_confirm.html", context)


class DisputeLineInline(PartsColumns, ReadOnlyInline):
    model = DisputeLine
    parent = "dispute"
    fields = ("order_line", "amount", "seller_part", "commission_part")
    readonly_fields = fields
    select_related = ("order_line", "dispute")


@admin.register(Dispute)
class DisputeAdmin(AmountColumn, ReadOnlyAdmin):
    list_display = ("__str__", "order", "amount", "reason", "status", "opened_at", "closed_at")
    list_filter = ("status", "processor", "currency")
    search_fields = ("processor_dispute_id", "order__id")
    list_select_related = ("order",)
    inlines = [DisputeLineInline]
