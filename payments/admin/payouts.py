"""Operator admin for paying sellers: policies, payout runs, payouts and clawbacks.

Every button here calls one service (``run_payouts``, ``payments.payouts.controls``,
``payout_resume``, ``bank_transfer_csv``); the admin only collects who, why and
which. A payout's page shows its processor steps (the transfer, then each bank
payout attempt) and the clawbacks taken back from it, read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from marketplace.kernel.errors import ApplicationError
from payments.admin.audit import AuditedSettingAdmin, HistoryInline
from payments.admin.base import (
    AmountColumn,
    ReadOnlyAdmin,
    ReadOnlyInline,
    ReadOnlyWithActionsAdmin,
    ReasonActionForm,
)
from payments.admin.policy_forms import PayoutPolicyForm, amounts_text
from payments.models import (
    Clawback,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    PayoutRun,
    PayoutStep,
)
from payments.payouts.bank_transfers import bank_transfer_csv
from payments.payouts.controls import (
    payout_approve,
    payout_cancel,
    payout_hold,
    payout_mark_paid,
    payout_release,
    payout_retry,
)
from payments.payouts.freezes import payout_policy_save
from payments.payouts.policies import policy_text
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_resume


@admin.register(PayoutPolicy)
class PayoutPolicyAdmin(AuditedSettingAdmin):
    """Policies are saved by ``payout_policy_save`` with who and why. The seller is
    picked by name from a plain labelled list (select2's autocomplete box has no
    accessible name: axe-core "aria-input-field-name"); minimums and approval
    thresholds are entered as money, one box per currency (``policy_forms``), and
    listed as money."""

    form = PayoutPolicyForm

    def save_service(self, obj: PayoutPolicy, by: Any, reason: str) -> PayoutPolicy:

        return payout_policy_save(policy=obj, by=by, reason=reason, via="admin")

    list_display = (
        "__str__",
        "terms",
        "minimums_shown",
        "approval_shown",
        "frozen",
        "frozen_reason",
    )
    list_filter = ("schedule", "method", "frozen")
    search_fields = ("seller__display_name", "seller__slug")
    list_select_related = ("seller",)
    fieldsets = (
        (None, {"fields": ("seller", "method")}),
        ("Schedule", {"fields": ("schedule", "weekday", "month_day")}),
        (
            "Holds and reserve",
            {"fields": ("hold_days", "release_on_delivery", "reserve", "reserve_days")},
        ),
        ("Amounts", {"fields": ("minimums", "approval_thresholds")}),
        ("Freeze", {"fields": ("frozen", "frozen_reason")}),
    )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "seller":
            kwargs["queryset"] = Seller.objects.order_by("display_name")
            kwargs["empty_label"] = "None: the platform default"
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="schedule, method, hold and reserve")
    def terms(self, policy: PayoutPolicy) -> str:

        return policy_text(policy, amounts=False)

    @admin.display(description="minimum payout")
    def minimums_shown(self, policy: PayoutPolicy) -> str:
        return amounts_text(policy.minimums)

    @admin.display(description="approval needed above")
    def approval_shown(self, policy: PayoutPolicy) -> str:
        return amounts_text(policy.approval_thresholds)


class PayoutEntryInline(ReadOnlyInline):
    model = PayoutEntry
    fields = ("transaction", "kind", "amount", "description")
    readonly_fields = fields
    verbose_name_plural = "breakdown (ledger entries this payout pays for)"

    select_related = ("entry__transaction", "entry__account__seller")

    @admin.display(description="ledger transaction")
    def transaction(self, item: PayoutEntry) -> str:
        """The entry's transaction, linked (an entry's own name shows its minor units)."""
        url = reverse("admin:payments_ledgertransaction_change", args=[item.entry.transaction_id])
        return format_html('<a href="{}">#{}</a>', url, item.entry.transaction_id)

    @admin.display(description="kind")
    def kind(self, item: PayoutEntry) -> str:
        return item.entry.transaction.get_kind_display()

    @admin.display(description="amount")
    def amount(self, item: PayoutEntry) -> str:
        return format_amount(-item.entry.amount_minor, item.entry.account.currency)

    @admin.display(description="description")
    def description(self, item: PayoutEntry) -> str:
        return item.entry.transaction.description


class PayoutActionForm(ReasonActionForm):
    reason = forms.CharField(
        required=False,
        max_length=255,
        label="Reason, or the bank reference when marking paid (kept in the payout's history)",
    )


class PayoutStepInline(ReadOnlyInline):
    """Each call to the processor: the transfer, then each bank payout attempt."""

    model = PayoutStep
    fields = (
        "kind",
        "attempt",
        "amount",
        "outcome",
        "processor_object_id",
        "object_status",
        "error_code",
        "message",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
    verbose_name = "processor step"
    verbose_name_plural = "Processor steps (the transfer, then each bank payout attempt)"
    select_related = ("payout",)

    @admin.display(description="amount")
    def amount(self, step: PayoutStep) -> str:
        return format_amount(step.amount_minor, step.payout.currency)


class ClawbackAmounts:
    """The wanted and taken columns of a clawback, in its payout's currency."""

    @admin.display(description="wanted", ordering="wanted_minor")
    def wanted(self, clawback: Clawback) -> str:
        return format_amount(clawback.wanted_minor, clawback.payout.currency)

    @admin.display(description="taken back", ordering="amount_minor")
    def taken(self, clawback: Clawback) -> str:
        return format_amount(clawback.amount_minor, clawback.payout.currency)

    @admin.display(description="for")
    def reason(self, clawback: Clawback) -> str:
        """The refund or the lost dispute it is for, linked to its page."""
        pages = {
            "refund": "admin:payments_refund_change",
            "dispute": "admin:payments_dispute_change",
        }
        if clawback.reason_type not in pages:
            return f"{clawback.reason_type} #{clawback.reason_id}"
        url = reverse(pages[clawback.reason_type], args=[clawback.reason_id])
        return format_html('<a href="{}">{} #{}</a>', url, clawback.reason_type, clawback.reason_id)


class ClawbackInline(ClawbackAmounts, ReadOnlyInline):
    model = Clawback
    fields = (
        "reason",
        "wanted",
        "taken",
        "status",
        "processor_reversal_id",
        "note",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields
    verbose_name_plural = "Clawbacks (taken back from its transfer for refunds and lost disputes)"
    select_related = ("payout",)


class NeedsAttentionFilter(admin.SimpleListFilter):
    """Payouts whose automatic sending stopped for an operator (``attention_reason``)."""

    title = "needs attention"
    parameter_name = "needs_attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payout]) -> QuerySet[Payout]:
        if self.value() == "yes":
            return queryset.exclude(attention_reason="")
        if self.value() == "no":
            return queryset.filter(attention_reason="")
        return queryset


@admin.register(Payout)
class PayoutAdmin(AmountColumn, ReadOnlyWithActionsAdmin):
    """Payouts are made by payout runs; operators approve, hold, release, cancel, retry,
    send again one that needs attention (after checking the processor) and (for bank
    transfers) mark them paid here, each action recorded with who, when and why."""

    action_form = PayoutActionForm

    list_display = (
        "__str__",
        "currency",
        "amount",
        "method",
        "period",
        "status",
        "failure_reason",
        "created_at",
        "paid_at",
    )
    list_filter = (
        "status",
        NeedsAttentionFilter,
        "method",
        "currency",
        ("seller", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    # Processor ids: the payout's transfer and latest bank payout, any attempt's object
    # (an earlier bank payout) and a clawback's transfer reversal.
    search_fields = (
        "seller__display_name",
        "seller__slug",
        "processor_transfer_id",
        "processor_payout_id",
        "=steps__processor_object_id",
        "=clawbacks__processor_reversal_id",
        "=id",
    )
    list_select_related = ("seller",)
    date_hierarchy = "created_at"
    inlines = [HistoryInline, PayoutStepInline, ClawbackInline, PayoutEntryInline]
    actions = ("approve", "hold", "release", "cancel", "retry", "resume", "mark_paid")

    def get_fieldsets(self, request: HttpRequest, obj: Payout | None = None) -> Any:
        """A payout that needs an operator says why first."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.attention_reason:
            return fieldsets
        first = ("attention_reason", "failure_reason", "next_attempt_at")
        rest = [name for name in fieldsets[0][1]["fields"] if name not in first]
        return [
            (
                "Needs attention",
                {
                    "fields": first,
                    "description": "Automatic sending stopped. Check the processor's "
                    "dashboard, then use the action “Send again after checking the "
                    "processor” with a reason.",
                },
            ),
            (None, {"fields": rest}),
        ]

    @admin.action(description="Approve the selected payouts (not your own)")
    def approve(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        done = 0
        for payout in queryset.filter(status=Payout.Status.AWAITING_APPROVAL):
            try:
                payout_approve(payout=payout, by=request.user, via="admin")  # type: ignore[arg-type]
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{payout}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{done} payout(s) approved.")

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Payout],
        service: Any,
        verb: str,
        missing: str = "",
    ) -> None:
        reason = self.action_reason(
            request, missing or f"Give a reason before the selected payouts are {verb}."
        )
        if reason is None:
            return
        done = 0
        for payout in queryset:
            try:
                service(payout=payout, by=request.user, reason=reason, via="admin")
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{payout}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{done} payout(s) {verb}.")

    @admin.action(description="Hold the selected payouts (give a reason)")
    def hold(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, payout_hold, "held")

    @admin.action(description="Release the selected held payouts (give a reason)")
    def release(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, payout_release, "released")

    @admin.action(description="Pay the selected failed payouts' sellers again now (give a reason)")
    def retry(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, payout_retry, "retried")

    @admin.action(description="Send again after checking the processor (give a reason)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, payout_resume, "sent again")

    @admin.action(
        description="Cancel the selected payouts (the money stays available; give a reason)"
    )
    def cancel(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, payout_cancel, "cancelled")

    @admin.action(
        description="Mark the selected bank-transfer payouts paid (reason: bank reference)"
    )
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        def service(*, payout: Payout, by: Any, reason: str, via: str) -> Payout:
            return payout_mark_paid(payout=payout, by=by, bank_reference=reason, via=via)

        self._each(
            request,
            queryset,
            service,
            "marked paid",
            missing="Give the bank transfer's reference in the reason box.",
        )


@admin.register(Clawback)
class ClawbackAdmin(ClawbackAmounts, ReadOnlyAdmin):
    """Clawbacks are made when a refund or a lost dispute follows a payout's transfer
    and run by a task (``payments/collection/clawbacks.py``); nothing here changes them."""

    list_display = (
        "__str__",
        "payout",
        "reason",
        "wanted",
        "taken",
        "status",
        "processor_reversal_id",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "reason_type", "created_at")
    search_fields = (
        "=payout__id",
        "=reason_id",
        "processor_reversal_id",
        "payout__seller__display_name",
        "payout__seller__slug",
    )
    list_select_related = ("payout__seller",)
    date_hierarchy = "created_at"
    readonly_fields = ("reason", "wanted", "taken")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Clawback]:
        # The change page's amounts read the payout's currency.
        return super().get_queryset(request).select_related("payout__seller")


class RunPayoutsForm(forms.Form):
    sellers = forms.ModelMultipleChoiceField(
        queryset=Seller.objects.order_by("display_name"),
        required=False,
        help_text="Leave empty to pay every seller whose schedule is due today; "
        "sellers chosen here are paid now whatever their schedule.",
    )


class PayoutInline(AmountColumn, ReadOnlyInline):
    model = Payout
    fields = ("link", "seller", "currency", "amount", "method", "status")
    readonly_fields = fields
    show_change_link = False
    select_related = ("seller",)

    @admin.display(description="payout")
    def link(self, payout: Payout) -> str:
        url = reverse("admin:payments_payout_change", args=[payout.pk])
        return format_html('<a href="{}">#{}</a>', url, payout.pk)


@admin.register(PayoutRun)
class PayoutRunAdmin(ReadOnlyAdmin):
    """Payout runs, the "Run payouts now" page (a dry-run preview first), and each
    run's bank-transfer file for its manual payouts."""

    list_display = (
        "__str__",
        "trigger",
        "started_by",
        "started_at",
        "finished_at",
        "progress",
        "payouts_created",
        "holds_released",
    )
    list_select_related = ("started_by",)
    list_filter = ("trigger", "started_at")
    shown_instead = {"chunks_total": "progress", "chunks_done": "progress"}
    readonly_fields = (
        "trigger",
        "started_by",
        "started_at",
        "finished_at",
        "progress",
        "holds_released",
        "payouts_created",
        "skipped",
        "bank_transfer_file",
    )
    inlines = [PayoutInline]
    change_list_template = "admin/payments/payoutrun/change_list.html"

    def get_urls(self) -> list[Any]:
        own = [
            path("run/", self.admin_site.admin_view(self.run_view), name="payments_payoutrun_run"),
            path(
                "<int:pk>/bank-transfers.csv",
                self.admin_site.admin_view(self.csv_view),
                name="payments_payoutrun_csv",
            ),
        ]
        return own + super().get_urls()

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.add_payout")

    @admin.display(description="chunks done / total")
    def progress(self, run: PayoutRun) -> str:
        """Each chunk of sellers is made by its own task; the run ends with its last."""
        return f"{run.chunks_done} / {run.chunks_total}"

    @admin.display(description="bank-transfer file")
    def bank_transfer_file(self, run: PayoutRun) -> str:
        if run.finished_at is None:
            # Its chunks are still being made: a file now would miss some payouts.
            return f"Ready when the run has finished ({run.chunks_done} / {run.chunks_total})"
        url = reverse("admin:payments_payoutrun_csv", args=[run.pk])
        return format_html('<a href="{}">Download the CSV of manual payouts to pay</a>', url)

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """GET and "Preview" show a dry run; "Run payouts now" makes the payouts: for
        the sellers named, here; for every due seller, by the workers, chunk by chunk
        (the run's page shows their progress), as the scheduled run does."""
        if not self.has_run_permission(request):
            return HttpResponse("You may not run payouts.", status=403)
        form = RunPayoutsForm(request.POST or None)
        report = None
        if request.method == "POST" and form.is_valid():
            sellers = list(form.cleaned_data["sellers"]) or None
            if "run" in request.POST:
                report = run_payouts(
                    sellers=sellers,
                    started_by=request.user,  # type: ignore[arg-type]
                    trigger=PayoutRun.Trigger.ADMIN,
                    fan_out=sellers is None,
                )
                assert report.run is not None
                if sellers is None:
                    message = (
                        f"{report.run} started: {report.run.chunks_total} chunk(s) of sellers "
                        "are being paid by the workers; this page shows their progress."
                    )
                else:
                    message = (
                        f"{report.run}: {len(report.created)} payout(s) created, "
                        f"{len(report.skipped)} seller(s) skipped."
                    )
                self.message_user(request, message)
                url = reverse("admin:payments_payoutrun_change", args=[report.run.pk])
                return HttpResponseRedirect(url)
            report = run_payouts(sellers=sellers, dry_run=True)
        elif request.method == "GET":
            report = run_payouts(dry_run=True)
        context = {
            **self.admin_site.each_context(request),
            "title": "Run payouts now",
            "opts": self.model._meta,
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/payments/payoutrun/run.html", context)

    def csv_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse("You may not see payout runs.", status=403)
        run = get_object_or_404(PayoutRun, pk=pk)
        response = HttpResponse(bank_transfer_csv(run), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="payout-run-{run.pk}-bank-transfers.csv"'
        )
        return response

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_run": self.has_run_permission(request)}
        return super().changelist_view(request, extra)
