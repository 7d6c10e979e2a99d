"""The customer service fee in the admin: a percentage typed in percent and a fixed
fee typed as money in the fee's currency, saved by ``service_fee_save`` (validated and
audited with who and why). Orders keep the fee they were placed with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin

from marketplace.kernel.currencies import (
    AmountError,
    amount_typed_to_minor,
    format_amount,
    to_major_units,
)
from payments.admin.audit import AuditedSettingAdmin, ReasonForm
from payments.admin.base import percent_text
from payments.admin.rule_forms import PERCENT_ERRORS, _amount_input, percent_field
from payments.models import ServiceFee
from payments.revenue.service_fees import service_fee_save

STORED_FIELDS = ("percentage_bps", "fixed_fee_minor")


class ServiceFeeForm(ReasonForm):
    percentage = percent_field(
        label="Percentage (%)",
        help_text="Of the order's items, e.g. 2.5 (at most two decimals). 0 for none.",
        error_messages={"required": "Enter a percentage, e.g. 2.5 (0 for none).", **PERCENT_ERRORS},
    )
    fixed_fee = forms.CharField(
        label="Fixed fee per order",
        required=False,
        widget=_amount_input(),
        help_text="In the fee's currency, e.g. 0.99 (yen: whole yen). Empty: none.",
    )

    class Meta:
        model = ServiceFee
        exclude = STORED_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fee = self.instance
        self.initial.setdefault("percentage", Decimal(fee.percentage_bps) / 100)
        shown = ""
        if fee.fixed_fee_minor and fee.currency:
            shown = str(to_major_units(fee.fixed_fee_minor, fee.currency))
        self.initial.setdefault("fixed_fee", shown)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        percentage = data.get("percentage")
        if percentage is not None:
            self.instance.percentage_bps = int(percentage * 100)
        currency = str(data.get("currency") or "")
        text = str(data.get("fixed_fee") or "").strip()
        self.instance.fixed_fee_minor = 0
        if text and currency:
            try:
                self.instance.fixed_fee_minor = amount_typed_to_minor(text, currency)
            except AmountError as exc:
                message = str(exc)
                self.add_error(
                    "fixed_fee", message if currency in message else f"{currency}: {message}"
                )
        if (
            percentage is not None
            and not self.instance.percentage_bps
            and not (self.instance.fixed_fee_minor or self.has_error("fixed_fee"))
        ):
            self.add_error(None, "Give a percentage, a fixed fee or both: this fee would be zero.")
        return data


@admin.register(ServiceFee)
class ServiceFeeAdmin(AuditedSettingAdmin):
    """Service fees are saved by ``service_fee_save`` with who and why."""

    form = ServiceFeeForm
    list_display = ("__str__", "currency", "percentage", "fixed_fee", "active_from", "active_until")
    list_filter = ("currency",)
    fieldsets = (
        (None, {"fields": ("name", "currency")}),
        ("The fee per order", {"fields": ("percentage", "fixed_fee")}),
        ("Active", {"fields": ("active_from", "active_until")}),
    )

    def save_service(self, obj: ServiceFee, by: Any, reason: str) -> ServiceFee:

        return service_fee_save(fee=obj, by=by, reason=reason, via="admin")

    @admin.display(description="percentage", ordering="percentage_bps")
    def percentage(self, fee: ServiceFee) -> str:
        return percent_text(fee.percentage_bps)

    @admin.display(description="fixed fee", ordering="fixed_fee_minor")
    def fixed_fee(self, fee: ServiceFee) -> str:
        return format_amount(fee.fixed_fee_minor, fee.currency) if fee.fixed_fee_minor else "—"
