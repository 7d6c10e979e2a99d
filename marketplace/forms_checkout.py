"""Forms of the cart and checkout pages."""

import re
import secrets
from dataclasses import dataclass
from datetime import date

from django import forms
from django.conf import settings
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django_countries import countries

from marketplace.services.cart import FORM_EXPIRED
from marketplace.services.orders import ShippingAddress
from payments.processors.local import TEST_CARD_OUTCOMES, TEST_IBAN_OUTCOMES, normalized_iban

SUBMISSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def submission_token_new() -> str:
    return secrets.token_urlsafe(32)


def quantity_field(minimum: int) -> forms.IntegerField:
    """A quantity from ``minimum`` to ``ORDER_MAX_QUANTITY``; whatever is wrong with it
    (too small, too large, not a number), the message says both limits."""
    message = f"Choose a quantity from {minimum} to {settings.ORDER_MAX_QUANTITY}."
    return forms.IntegerField(
        min_value=minimum,
        max_value=settings.ORDER_MAX_QUANTITY,
        initial=1,
        error_messages={
            code: message for code in ("required", "invalid", "min_value", "max_value")
        },
    )


class CartQuantityForm(forms.Form):
    """The quantity of a product in the cart; 0 takes it out."""

    product = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    quantity = quantity_field(0)

    def error_message(self) -> str:
        """What to tell the customer when the form is not valid."""
        if "quantity" in self.errors:
            return self.errors["quantity"][0]
        return "That product could not be found; reload the page and try again."


class CartAddForm(CartQuantityForm):
    """How many of a product to add to the cart: at least one."""

    quantity = quantity_field(1)


class CountrySelect(forms.Select):
    """The country select: its 250 options are rendered once per process and language
    (through the template engine, they cost more than the rest of the checkout page),
    then the chosen one is marked ``selected``. The same HTML as ``forms.Select``'s
    but for whitespace."""

    _options: dict[str, SafeString] = {}

    def _all_options(self) -> SafeString:
        language = get_language() or ""
        if language not in self._options:
            self._options[language] = mark_safe(  # noqa: S308 (each part escaped)
                "".join(
                    format_html('<option value="{}">{}</option>', value, label)
                    for value, label in self.choices
                )
            )
        return self._options[language]

    def render(self, name, value, attrs=None, renderer=None):
        options = str(self._all_options())
        chosen = format_html('<option value="{}">', "" if value is None else value)
        options = options.replace(chosen, chosen[:-1] + " selected>", 1)
        return format_html(
            "<select{}>{}</select>",
            flatatt(self.build_attrs(self.attrs, {**(attrs or {}), "name": name})),
            mark_safe(options),  # noqa: S308 (escaped above)
        )


class ShippingForm(forms.Form):
    """The delivery address, and the one-time token that makes the form place one order
    however often it is submitted (``checkout_submit``)."""

    # A fresh token each time the form is shown; checked in ``clean``, so that a
    # missing or garbled one is the form's own error, not the hidden field's.
    submission_token = forms.CharField(
        widget=forms.HiddenInput, required=False, strip=False, initial=submission_token_new
    )
    name = forms.CharField(
        label="Full name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    line1 = forms.CharField(
        label="Address",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "address-line1"}),
    )
    line2 = forms.CharField(
        label="Address (line 2)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"autocomplete": "address-level2"})
    )
    postal_code = forms.CharField(
        label="Postal code",
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )
    country = forms.ChoiceField(
        choices=[("", "Choose a country"), *list(countries)], widget=CountrySelect
    )

    def clean(self):
        cleaned_data = super().clean()
        if not SUBMISSION_TOKEN.fullmatch(cleaned_data.get("submission_token") or ""):
            raise forms.ValidationError(FORM_EXPIRED, code="expired")
        return cleaned_data

    def shipping(self) -> ShippingAddress:
        fields = ("name", "line1", "line2", "city", "postal_code", "country")
        return ShippingAddress(**{name: self.cleaned_data[name] for name in fields})

    def renew_token(self) -> None:
        """Show the form again with a new token: nothing was placed with the old one,
        and a token that was refused would be refused again."""
        self.data = self.data.copy()
        self.data[self.add_prefix("submission_token")] = submission_token_new()


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


@dataclass(frozen=True)
class LocalCard:
    number: str  # in groups of four, as printed on a card (never broken across lines)
    outcome: str


def grouped(number: str) -> str:
    """A card number or IBAN in groups of four, never broken across lines."""
    return "\N{NO-BREAK SPACE}".join(number[i : i + 4] for i in range(0, len(number), 4))


def local_test_cards() -> list[LocalCard]:
    """The local processor's test cards and what each does, from its own list."""

    return [LocalCard(grouped(number), outcome) for number, outcome in TEST_CARD_OUTCOMES.items()]


class CardForm(forms.Form):
    """The local processor's card form (Stripe's Payment Element takes its place with Stripe)."""

    card_number = forms.CharField(
        label="Card number",
        max_length=23,
        widget=forms.TextInput(attrs={"autocomplete": "cc-number", "inputmode": "numeric"}),
        help_text="One of the test cards listed on this page.",
    )
    expiry = forms.CharField(
        label="Expiry (MM/YY)",
        max_length=5,
        widget=forms.TextInput(attrs={"autocomplete": "cc-exp", "placeholder": "MM/YY"}),
    )
    cvc = forms.CharField(
        label="Security code",
        max_length=4,
        widget=forms.TextInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric"}),
    )

    def clean_card_number(self) -> str:
        number = "".join(ch for ch in self.cleaned_data["card_number"] if not ch.isspace())
        if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_ok(number):
            raise forms.ValidationError("Enter a valid card number.")
        return number

    def clean_expiry(self) -> str:
        value = self.cleaned_data["expiry"].strip()
        try:
            month, year = (int(part) for part in value.split("/"))
        except ValueError as exc:
            raise forms.ValidationError("Enter the expiry as MM/YY.") from exc
        if not 1 <= month <= 12:
            raise forms.ValidationError("Enter the expiry as MM/YY.")
        today = date.today()
        if (2000 + year, month) < (today.year, today.month):
            raise forms.ValidationError("This card has expired.")
        return value

    def clean_cvc(self) -> str:
        cvc = self.cleaned_data["cvc"].strip()
        if not cvc.isdigit() or len(cvc) not in (3, 4):
            raise forms.ValidationError("Enter the 3 or 4 digits on the back of the card.")
        return cvc


IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def iban_ok(iban: str) -> bool:
    """ISO 13616's check: the IBAN's shape, and its check digits (mod 97 is 1)."""
    if not IBAN_SHAPE.fullmatch(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


@dataclass(frozen=True)
class LocalIban:
    number: str  # in groups of four, as printed on a bank statement
    outcome: str


def local_test_ibans() -> list[LocalIban]:
    """The local processor's test IBANs and what each does, from its own list."""

    return [LocalIban(grouped(number), outcome) for number, outcome in TEST_IBAN_OUTCOMES.items()]


class BankDebitForm(forms.Form):
    """The local processor's bank debit form (SEPA Direct Debit-like): an IBAN and the
    customer's mandate. Its fields are prefixed ``debit-`` (it shares the page with the
    card form)."""

    METHOD = "bank_debit"

    iban = forms.CharField(
        label="IBAN",
        max_length=42,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="One of the test IBANs listed on this page. Bank debits take a few days.",
    )
    mandate = forms.BooleanField(
        label="I authorise the marketplace to debit this account for this order.",
        error_messages={"required": "Tick the box to authorise the debit."},
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "debit")
        super().__init__(*args, **kwargs)

    def clean_iban(self) -> str:

        iban = normalized_iban(self.cleaned_data["iban"])
        if not iban_ok(iban):
            raise forms.ValidationError("Enter a valid IBAN, such as AT61 1904 3002 3457 3201.")
        return iban
