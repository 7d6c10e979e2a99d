"""Seller plans in the admin: plans edited as money and percent through
``seller_plan_save`` (validated, audited with who and why); the sellers' plan choices
and plan charges read-only, with a "Change a seller's plan" page that calls
``seller_plan_change`` (prorated, like the seller's own page)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.models import Seller
from marketplace.kernel.currencies import (
    AmountError,
    amount_typed_to_minor,
    format_amount,
    to_major_units,
)
from marketplace.kernel.errors import ApplicationError
from payments.admin.audit import AuditedSettingAdmin, ReasonForm
from payments.admin.base import AmountColumn, ReadOnlyAdmin, percent_text
from payments.admin.rule_forms import percent_field
from payments.models import SellerPlan, SellerPlanCharge, SellerPlanChoice
from payments.revenue.plans import seller_plan_change, seller_plan_change_preview, seller_plan_save

STORED_FIELDS = ("monthly_fee_minor", "commission_bps")


def typed_money(form: forms.BaseForm, field: str, currency: str) -> int | None:
    """The amount typed in ``field`` as minor units of ``currency`` (never rounded), or
    None after adding the form error (naming the currency) or when nothing was typed."""
    text = str(form.cleaned_data.get(field) or "").strip()
    if not text or not currency:
        return None
    try:
        return amount_typed_to_minor(text, currency)
    except AmountError as exc:
        message = str(exc)
        form.add_error(field, message if currency in message else f"{currency}: {message}")
        return None


class SellerPlanForm(ReasonForm):
    """A plan's monthly fee as money in its currency and its commission in percent."""

    monthly_fee = forms.CharField(
        label="Monthly fee",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 14}),
        help_text="In the plan's currency, e.g. 29.00 (yen: whole yen). 0 for a free plan.",
    )
    commission = percent_field(
        label="Commission (%)",
        help_text="Replaces the default and category rules for the seller's sales, e.g. 5. "
        "Empty: the commission rules apply unchanged.",
        error_messages={
            "max_value": "The commission cannot be more than 100.",
            "min_value": "The commission cannot be negative.",
            "max_decimal_places": "Enter the commission with at most two decimals.",
        },
    )

    class Meta:
        model = SellerPlan
        exclude = STORED_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["commission"].required = False
        self.fields["commission"].initial = None
        plan = self.instance
        if plan.pk is not None:
            self.initial.setdefault(
                "monthly_fee", str(to_major_units(plan.monthly_fee_minor, plan.currency))
            )
            self.initial.setdefault(
                "commission",
                None if plan.commission_bps is None else Decimal(plan.commission_bps) / 100,
            )
        else:
            self.initial.setdefault("commission", None)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        commission = data.get("commission")
        self.instance.commission_bps = None if commission is None else int(commission * 100)
        fee = typed_money(self, "monthly_fee", str(data.get("currency") or ""))
        if fee is not None:
            self.instance.monthly_fee_minor = fee
        plan = self.instance
        if plan.pk is not None and "currency" in self.changed_data and plan.choices.exists():
            self.add_error("currency", "Sellers have chosen this plan: its currency cannot change.")
        return data


@admin.register(SellerPlan)
class SellerPlanAdmin(AuditedSettingAdmin):
    """Plans are saved by ``seller_plan_save`` with who and why."""

    form = SellerPlanForm
    list_display = ("name", "currency", "monthly_fee", "commission", "is_offered", "sellers_on")
    list_filter = ("currency", "is_offered")
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "description", "currency", "is_offered")}),
        ("Price and commission", {"fields": ("monthly_fee", "commission")}),
    )

    def save_service(self, obj: SellerPlan, by: Any, reason: str) -> SellerPlan:

        return seller_plan_save(plan=obj, by=by, reason=reason, via="admin")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a plan sellers chose is history; stop offering it instead

    @admin.display(description="monthly fee", ordering="monthly_fee_minor")
    def monthly_fee(self, plan: SellerPlan) -> str:
        return format_amount(plan.monthly_fee_minor, plan.currency)

    @admin.display(description="commission", ordering="commission_bps")
    def commission(self, plan: SellerPlan) -> str:
        return "rules" if plan.commission_bps is None else percent_text(plan.commission_bps)

    @admin.display(description="sellers on it")
    def sellers_on(self, plan: SellerPlan) -> int:
        return plan.choices.filter(ended_at__isnull=True).count()


class PlanChangeForm(forms.Form):
    seller = forms.ModelChoiceField(queryset=Seller.objects.order_by("display_name"))
    plan = forms.ModelChoiceField(
        queryset=SellerPlan.objects.all(),
        help_text="In the seller's currency; a plan not offered may be assigned here.",
    )
    reason = forms.CharField(max_length=255, label="Reason for this change")


@admin.register(SellerPlanChoice)
class SellerPlanChoiceAdmin(ReadOnlyAdmin):
    """Who was on which plan when; changed only through "Change a seller's plan"."""

    list_display = ("seller", "plan", "started_at", "ended_at", "chosen_by")
    list_filter = ("plan", ("ended_at", admin.EmptyFieldListFilter))
    search_fields = ("seller__display_name", "seller__slug")
    list_select_related = ("seller", "plan", "chosen_by")
    change_list_template = "admin/payments/sellerplanchoice/change_list.html"

    def get_urls(self) -> list[Any]:
        return [
            path(
                "change-plan/",
                self.admin_site.admin_view(self.change_plan_view),
                name="payments_sellerplanchoice_change_plan",
            ),
            *super().get_urls(),
        ]

    def change_plan_view(self, request: HttpRequest) -> HttpResponse:
        """Move a seller to a plan (prorated) by calling ``seller_plan_change``."""

        codename = f"{self.opts.app_label}.change_{self.opts.model_name}"
        if not request.user.has_perm(codename):
            raise PermissionDenied
        form = PlanChangeForm(request.POST or None, initial={"seller": request.GET.get("seller")})
        preview = None
        if request.method == "POST" and form.is_valid():
            seller, plan = form.cleaned_data["seller"], form.cleaned_data["plan"]
            try:
                if "confirm" in request.POST:
                    seller_plan_change(
                        seller=seller,
                        plan=plan,
                        by=request.user,  # type: ignore[arg-type]
                        reason=form.cleaned_data["reason"],
                        via="admin",
                    )
                    self.message_user(request, f"{seller} is now on the {plan.name} plan.")
                    return HttpResponseRedirect(
                        reverse("admin:payments_sellerplanchoice_changelist")
                    )
                preview = seller_plan_change_preview(
                    seller=seller,
                    plan=plan,
                    by=request.user,  # type: ignore[arg-type]
                )
            except ApplicationError as exc:
                form.add_error("plan", exc.message)
                messages.error(request, f"{exc.message} Nothing was changed.")
        context = {
            **self.admin_site.each_context(request),
            "title": "Change a seller's plan",
            "opts": self.opts,
            "form": form,
            "preview": preview,
        }
        return TemplateResponse(
            request, "admin/payments/sellerplanchoice/change_plan.html", context
        )


@admin.register(SellerPlanCharge)
class SellerPlanChargeAdmin(AmountColumn, ReadOnlyAdmin):
    """Plan fees charged and credited: written by the billing and plan changes only."""

    list_display = ("created_at", "seller", "plan", "kind", "amount", "period_start", "period_end")
    list_filter = ("kind", "currency", "plan")
    search_fields = ("seller__display_name", "idempotency_key")
    list_select_related = ("seller", "plan")
