"""The commission rule form: the percentage typed as a percent and the fixed fee,
minimum and maximum as money in the rule's currency, instead of basis points and
minor units.

The percentage takes at most two decimals ("10", "12.5", "0.25"), stored as basis
points. Each amount is a decimal in the currency's major unit ("0.30", "300" for
yen; commas only between thousands), converted with ``amount_typed_to_minor``, which
never rounds: more decimals than the currency has, a decimal comma, a negative or a
non-number is a form error naming the currency, and nothing is saved. The model's own
rules (amounts need a currency, the minimum is not above the maximum) are checked on
the converted values.

The rule's volume tiers are an inline formset (``VolumeTierFormSet``): amounts as
money in the rule's currency, percentages in percent, checked together by
``payments.revenue.volume_tiers.volume_tiers_validate`` and saved by ``volume_tiers_save``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from marketplace.kernel.currencies import AmountError, amount_typed_to_minor, to_major_units
from payments.admin.audit import ReasonForm
from payments.models import CommissionRule, VolumeTier
from payments.revenue.volume_tiers import volume_tiers_validate

# Form field -> the model field it is stored in (minor units of the rule's currency).
AMOUNT_FIELDS = {
    "fixed_fee": "fixed_fee_minor",
    "minimum": "minimum_minor",
    "maximum": "maximum_minor",
}
STORED_FIELDS = ("percentage_bps", *AMOUNT_FIELDS.values())


def _amount_input() -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 14})


# The errors of a percentage box beyond "required" (for the forms added with issue 19).
PERCENT_ERRORS = {
    "max_value": "The percentage cannot be more than 100.",
    "min_value": "The percentage cannot be negative.",
    "max_decimal_places": "Enter the percentage with at most two decimals, e.g. 12.25.",
}


def percent_field(*, label: str, help_text: str, error_messages: dict[str, str]) -> Any:
    """A percentage typed as people write it (10, 12.5): 0 to 100 with at most two
    decimals, stored by the form as basis points. ``error_messages`` add to (or
    replace) the common "Enter a percentage such as 10 or 12.5." for bad text."""
    return forms.DecimalField(
        label=label,
        min_value=Decimal(0),
        max_value=Decimal(100),
        decimal_places=2,
        initial=Decimal(0),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 8}),
        help_text=help_text,
        error_messages={"invalid": "Enter a percentage such as 10 or 12.5.", **error_messages},
    )


def rule_has_tiers(rule: CommissionRule) -> bool:
    return rule.pk is not None and VolumeTier.objects.filter(rule_id=rule.pk).exists()


class CommissionRuleForm(ReasonForm):
    """A commission rule in percent and money, with the reason for the change."""

    percentage = percent_field(
        label="Percentage (%)",
        help_text="Of each line's price, e.g. 10 or 12.5 (at most two decimals).",
        error_messages={
            "required": "Enter a percentage, e.g. 10 (0 for none).",
            "max_value": "The percentage cannot be more than 100.",
            "min_value": "The percentage cannot be negative.",
            "max_decimal_places": "Enter the percentage with at most two decimals, e.g. 12.25.",
        },
    )
    fixed_fee = forms.CharField(
        label="Fixed fee per line",
        required=False,
        widget=_amount_input(),
        help_text="Added to the percentage, in the rule's currency, e.g. 0.30 "
        "(yen: whole yen). Empty: none.",
    )
    minimum = forms.CharField(
        label="Minimum per line",
        required=False,
        widget=_amount_input(),
        help_text="The least the rule takes of a line, in the rule's currency. Empty: none.",
    )
    maximum = forms.CharField(
        label="Maximum per line",
        required=False,
        widget=_amount_input(),
        help_text="The most the rule takes of a line, in the rule's currency. Empty: none.",
    )

    class Meta:
        model = CommissionRule
        exclude = STORED_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rule = self.instance
        self.initial.setdefault("percentage", Decimal(rule.percentage_bps) / 100)
        for name, stored in AMOUNT_FIELDS.items():
            minor = getattr(rule, stored)
            shown = ""
            if minor and rule.currency:
                shown = str(to_major_units(minor, rule.currency))
            self.initial.setdefault(name, shown)
        if "currency" in self.fields:
            self.fields["currency"].help_text = (
                "The currency of the fixed fee, minimum and maximum; needed with any of "
                "them. Blank: the percentage applies to every currency."
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        percentage = data.get("percentage")
        if percentage is not None:
            self.instance.percentage_bps = int(percentage * 100)
        currency = str(data.get("currency") or "")
        if currency != (self.instance.currency or "") and rule_has_tiers(self.instance):
            self.add_error(
                "currency",
                "This rule has volume tiers, measured in its currency: delete the tiers "
                "and save first, then change the currency.",
            )
        for name, stored in AMOUNT_FIELDS.items():
            text = str(data.get(name) or "").strip()
            if not text:
                setattr(self.instance, stored, 0 if name == "fixed_fee" else None)
                continue
            if not currency:
                self.add_error(
                    name, "Choose the rule's currency: a fixed fee, minimum or maximum needs one."
                )
                continue
            try:
                minor = amount_typed_to_minor(text, currency)
            except AmountError as exc:
                message = str(exc)
                if currency not in message:
                    message = f"{currency}: {message}"
                self.add_error(name, message)
                continue
            setattr(self.instance, stored, minor)
        return data

    def _get_validation_exclusions(self) -> set[str]:
        """The model's checks (amounts need a currency, minimum not above maximum) run
        on the converted values too, unless an amount was refused already."""
        exclude: set[str] = super()._get_validation_exclusions()  # type: ignore[misc]
        refused = getattr(self, "_errors", None) or {}
        if any(name in refused for name in ("percentage", *AMOUNT_FIELDS)):
            return exclude
        return exclude - set(STORED_FIELDS)


def _row_number(prefix: str | None) -> str:
    """ "tiers-0" -> "1"; the empty form's "__prefix__" stays a placeholder."""
    index = str(prefix or "").rsplit("-", 1)[-1]
    return str(int(index) + 1) if index.isdigit() else "new"


class VolumeTierForm(forms.ModelForm):  # type: ignore[type-arg]
    """One tier, typed as money in the rule's currency and a percent; the formset
    converts and checks them together (``volume_tiers_validate``)."""

    sales_from = forms.CharField(
        label="Sales from",
        widget=_amount_input(),
        help_text="The seller's sales over the last 30 days, in the rule's currency.",
    )
    sales_up_to = forms.CharField(
        label="Sales up to (not including)",
        required=False,
        widget=_amount_input(),
        help_text="Empty for the last tier (no upper end).",
    )
    percentage = percent_field(
        label="Rate (%)",
        help_text="Replaces the rule's percentage while sales are in this band.",
        error_messages={"required": "Enter the tier's percentage, e.g. 8.", **PERCENT_ERRORS},
    )

    class Meta:
        model = VolumeTier
        fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A table row shows no label of its own: each box names its tier.
        number = _row_number(self.prefix)
        for name, field in self.fields.items():
            words = str(field.label or name).lower()
            field.widget.attrs.setdefault("aria-label", f"Tier {number} {words}")
        tier = self.instance
        if tier.pk is not None:
            currency = tier.rule.currency
            self.initial.setdefault("percentage", Decimal(tier.percentage_bps) / 100)
            if currency:
                self.initial.setdefault(
                    "sales_from", str(to_major_units(tier.from_minor, currency))
                )
                if tier.up_to_minor is not None:
                    self.initial.setdefault(
                        "sales_up_to", str(to_major_units(tier.up_to_minor, currency))
                    )


class VolumeTierFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]
    """All the rule's tiers at once: amounts converted in the rule's currency, then
    ``volume_tiers_validate`` (no gap, no overlap, from 0, last without top); its
    errors are the formset's, and nothing is saved. ``tier_specs`` is what to save
    (None: the page sent no tiers, e.g. an older form; the tiers are left alone)."""

    tier_specs: list[tuple[int, int | None, int]] | None = None

    def get_queryset(self) -> Any:
        # Each saved tier's row title names its band in money (``VolumeTier.__str__``
        # reads the rule's currency): the rule comes with the tiers, in one query.
        return super().get_queryset().select_related("rule")

    def add_fields(self, form: Any, index: int | None) -> None:
        super().add_fields(form, index)
        number = _row_number(form.prefix)
        for name in ("DELETE", "id", "rule"):
            if name in form.fields:
                form.fields[name].widget.attrs.setdefault("aria-label", f"Tier {number} {name}")
        if "DELETE" in form.fields:
            form.fields["DELETE"].widget.attrs["aria-label"] = f"Delete tier {number}"

    def _sent(self) -> bool:
        return not self.is_bound or f"{self.prefix}-TOTAL_FORMS" in self.data

    def is_valid(self) -> bool:
        if not self._sent():
            return True
        return bool(super().is_valid())

    def clean(self) -> None:
        super().clean()

        if any(self.errors):
            return
        currency = str(self.instance.currency or "")
        specs: list[tuple[int, int | None, int]] = []
        failed = False
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            if not currency:
                raise forms.ValidationError(
                    "Volume tiers need the rule's currency: the seller's sales are measured "
                    "in it. Choose the currency above."
                )
            amounts: list[int | None] = []
            for name in ("sales_from", "sales_up_to"):
                text = str(data.get(name) or "").strip()
                if not text:
                    amounts.append(None)
                    continue
                try:
                    amounts.append(amount_typed_to_minor(text, currency))
                except AmountError as exc:
                    message = str(exc)
                    form.add_error(
                        name, message if currency in message else f"{currency}: {message}"
                    )
                    failed = True
            if failed or amounts[0] is None:
                continue
            specs.append((amounts[0], amounts[1], int(data["percentage"] * 100)))
        if failed:
            return
        try:
            self.tier_specs = volume_tiers_validate(
                currency=currency, tiers=specs, scope=str(self.instance.scope)
            )
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
