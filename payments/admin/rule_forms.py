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
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from payments.admin.audit import ReasonForm
from payments.currencies import AmountError, amount_typed_to_minor, to_major_units
from payments.models import CommissionRule

# Form field -> the model field it is stored in (minor units of the rule's currency).
AMOUNT_FIELDS = {
    "fixed_fee": "fixed_fee_minor",
    "minimum": "minimum_minor",
    "maximum": "maximum_minor",
}
STORED_FIELDS = ("percentage_bps", *AMOUNT_FIELDS.values())


def _amount_input() -> forms.TextInput:
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 14})


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
