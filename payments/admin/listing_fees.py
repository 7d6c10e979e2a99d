"""Listing fees in the admin: the fee typed as money in its currency, saved by
``listing_fee_save`` (validated, audited with who and why); the listing charges
read-only (written by listing and renewal only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from marketplace.kernel.currencies import format_amount, to_major_units
from payments.admin.audit import AuditedSettingAdmin, ReasonForm
from payments.admin.base import AmountColumn, ReadOnlyAdmin
from payments.admin.plans import typed_money
from payments.models import ListingCharge, ListingFee
from payments.revenue.listing_fees import listing_fee_save


class ListingFeeForm(ReasonForm):
    fee = forms.CharField(
        label="Fee per listing",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 14}),
        help_text="Charged from the seller's balance for each listing period, in the fee's "
        "currency, e.g. 0.20 (yen: whole yen). Only products in this currency pay it.",
    )

    class Meta:
        model = ListingFee
        exclude = ("amount_minor",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fee = self.instance
        if fee.pk is not None:
            self.initial.setdefault("fee", str(to_major_units(fee.amount_minor, fee.currency)))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        amount = typed_money(self, "fee", str(data.get("currency") or ""))
        if amount is not None:
            self.instance.amount_minor = amount
        return data


@admin.register(ListingFee)
class ListingFeeAdmin(AuditedSettingAdmin):
    """Listing fees are saved by ``listing_fee_save`` with who and why."""

    form = ListingFeeForm
    list_display = (
        "__str__",
        "scope",
        "category",
        "currency",
        "fee_per_listing",
        "listing_days",
        "active_from",
        "active_until",
    )
    list_filter = ("scope", "currency")
    list_select_related = ("category",)
    fieldsets = (
        (None, {"fields": ("scope", "category", "currency")}),
        ("The fee", {"fields": ("fee", "listing_days")}),
        ("Active", {"fields": ("active_from", "active_until")}),
    )

    def save_service(self, obj: ListingFee, by: Any, reason: str) -> ListingFee:

        return listing_fee_save(fee=obj, by=by, reason=reason, via="admin")

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # charged fees point at it; end it with "active until" instead

    @admin.display(description="fee per listing", ordering="amount_minor")
    def fee_per_listing(self, fee: ListingFee) -> str:
        return format_amount(fee.amount_minor, fee.currency)


@admin.register(ListingCharge)
class ListingChargeAdmin(AmountColumn, ReadOnlyAdmin):
    """Listing fees charged: written by listing and renewing products only."""

    list_display = (
        "created_at",
        "seller",
        "product",
        "kind",
        "amount",
        "listed_from",
        "listed_until",
    )
    list_filter = ("kind", "currency")
    search_fields = ("seller__display_name", "product__title", "idempotency_key")
    list_select_related = ("seller", "product")
