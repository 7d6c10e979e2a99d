"""The payout policy form: minimums and approval thresholds entered as money, one
labelled box per currency the marketplace accepts, instead of JSON in minor units.

Each box takes a decimal amount in the currency's major unit ("25.00", "3000" for
yen; commas only between thousands); it is converted with ``amount_typed_to_minor``,
which never rounds: more decimals than the currency has, a decimal comma, a negative
or a non-number is a form error naming the currency, and nothing is saved. An empty
box means no amount for that currency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from marketplace.kernel.currencies import (
    SUPPORTED_CURRENCIES,
    AmountError,
    amount_typed_to_minor,
    exponent,
    format_amount,
    to_major_units,
)
from payments.admin.audit import ReasonForm
from payments.admin.rule_forms import percent_field
from payments.models import PayoutPolicy


class AmountsPerCurrencyWidget(forms.MultiWidget):
    """A table with a row per currency: its code, a labelled text box, and how many
    decimals it takes."""

    def __init__(self, what: str, attrs: dict[str, Any] | None = None) -> None:
        self.what = what
        self.currencies = SUPPORTED_CURRENCIES
        widgets = [
            forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 14})
            for _ in self.currencies
        ]
        super().__init__(widgets, attrs)

    def decompress(self, value: Any) -> list[str]:
        amounts = value if isinstance(value, dict) else {}
        return [
            str(to_major_units(amounts[code], code)) if isinstance(amounts.get(code), int) else ""
            for code in self.currencies
        ]

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        context = self.get_context(name, value, attrs)
        rows = []
        for index, (code, sub) in enumerate(
            zip(self.currencies, context["widget"]["subwidgets"], strict=True)
        ):
            # Only a box whose amount is wrong is marked invalid, with its error beside it.
            attrs_ = {k: v for k, v in sub["attrs"].items() if k != "aria-invalid"}
            problem = _problem(code, sub["value"])
            if problem:
                attrs_["aria-invalid"] = "true"
            box = self.widgets[index].render(sub["name"], sub["value"], attrs_, renderer)
            places = exponent(code)
            decimals = "no decimals" if places == 0 else f"up to {places} decimals"
            note = (
                format_html('<ul class="errorlist"><li>{}</li></ul>', problem)
                if problem
                else decimals
            )
            rows.append((attrs_.get("id", ""), self.what, code, box, note))
        body = format_html_join(
            "\n",
            '<tr><th scope="row"><label for="{}"><span class="visually-hidden">{} in </span>'
            "{}</label></th><td>{}</td><td>{}</td></tr>",
            rows,
        )
        return format_html(
            '<table class="amounts-per-currency"><caption class="visually-hidden">{} per '
            'currency</caption><thead><tr><th scope="col">Currency</th><th scope="col">Amount'
            '</th><th scope="col">Decimals</th></tr></thead><tbody>{}</tbody></table>',
            self.what,
            body,
        )

    def id_for_label(self, id_: str) -> str:
        # Each box has its own label; the field's label names no single box.
        return ""


def _problem(currency: str, value: Any) -> str:
    """Why a box's text is not an amount in ``currency`` ("" when it is, or is empty)."""
    try:
        AmountField(currency).clean(value)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return ""


class AmountField(forms.CharField):
    """One currency's box: a decimal amount in major units, cleaned to minor units."""

    def __init__(self, currency: str, **kwargs: Any) -> None:
        self.currency = currency
        super().__init__(required=False, strip=True, **kwargs)

    def clean(self, value: Any) -> int | None:
        text = str(super().clean(value) or "").strip()
        if not text:
            return None
        try:
            return amount_typed_to_minor(text, self.currency)
        except AmountError as exc:
            message = str(exc)
            if self.currency not in message:
                message = f"{self.currency}: {message}"
            raise ValidationError(message, code="amount") from exc


class AmountsPerCurrencyField(forms.MultiValueField):
    """``{"USD": 2500, "JPY": 3000}`` (minor units) from one box per currency."""

    def __init__(self, what: str, **kwargs: Any) -> None:
        fields = [AmountField(code) for code in SUPPORTED_CURRENCIES]
        kwargs.setdefault("required", False)
        super().__init__(
            fields,
            require_all_fields=False,
            widget=AmountsPerCurrencyWidget(what),
            **kwargs,
        )

    def clean(self, value: Any) -> dict[str, int]:
        """Every currency's error at once, each naming its currency."""
        values = value if isinstance(value, list | tuple) else self.widget.decompress(value)
        amounts: dict[str, int] = {}
        errors: list[ValidationError] = []
        for field, raw in zip(self.fields, values, strict=False):
            assert isinstance(field, AmountField)
            try:
                minor = field.clean(raw)
            except ValidationError as exc:
                errors.append(exc)
                continue
            if minor is not None:
                amounts[field.currency] = minor
        if errors:
            raise ValidationError(errors)
        return amounts

    def compress(self, data_list: list[Any]) -> dict[str, int]:
        return dict(zip(SUPPORTED_CURRENCIES, data_list, strict=False))

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return dict(initial or {}) != self.clean(data)
        except ValidationError:
            return True


WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


class PayoutPolicyForm(ReasonForm):
    """A payout policy with its amounts as money and the reason for the change."""

    minimums = AmountsPerCurrencyField(
        "Minimum payout",
        label="Minimum payout",
        help_text="Smallest payout per currency; less rolls over to the next payout. "
        "Leave a box empty for no minimum in that currency.",
    )
    approval_thresholds = AmountsPerCurrencyField(
        "Approval needed above",
        label="Approval needed above",
        help_text="Payouts larger than this wait for a second operator's approval. "
        "Leave a box empty for no approval in that currency.",
    )
    reserve = percent_field(
        label="Rolling reserve (%)",
        help_text="Of the earnings released, kept back for the reserve days, e.g. 10 (0: none).",
        error_messages={
            "max_value": "The reserve cannot be more than 100%%.",
            "min_value": "The reserve cannot be negative.",
            "max_decimal_places": "Enter the reserve with at most two decimals.",
        },
    )
    weekday = forms.TypedChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        initial=0,
        label="Weekday",
        help_text="For weekly payouts.",
    )

    class Meta:
        model = PayoutPolicy
        exclude = ("reserve_bps",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial.setdefault("reserve", Decimal(self.instance.reserve_bps) / 100)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        reserve = data.get("reserve")
        self.instance.reserve_bps = int((reserve or Decimal(0)) * 100)
        return data


def amounts_text(amounts: dict[str, int]) -> str:
    """Amounts per currency as money, for a list column: "$25.00, ¥3,000" or "none"."""
    return (
        ", ".join(format_amount(minor, code) for code, minor in sorted(amounts.items())) or "none"
    )
