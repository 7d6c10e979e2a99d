"""Currencies the marketplace trades in, and amounts in their minor units.

Amounts are stored as integers in the currency's minor unit (cents for USD,
yen for JPY, fils for KWD). The number of decimals of each currency comes from
CLDR through Babel, a maintained package, rather than a table typed here.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberPattern, get_currency_name, get_currency_precision
from django.utils import translation

# Currencies a seller can price products in. Each one is a real ISO 4217 code
# that Stripe can settle; the list is short on purpose so that every currency
# on the site has been looked at (JPY: no decimals, KWD: three).
SUPPORTED_CURRENCIES: tuple[str, ...] = (
    "USD",
    "EUR",
    "GBP",
    "JPY",
    "CAD",
    "AUD",
    "CHF",
    "SEK",
    "KWD",
)

# Largest amount a single price may have, in major units of any currency.
MAX_MAJOR_UNITS = 10_000_000


class AmountError(ValueError):
    """A decimal amount that cannot be expressed in a currency's minor units."""


def currency_choices() -> list[tuple[str, str]]:
    """(code, "code — name") pairs for a form or model field."""
    return [
        (code, f"{code} — {get_currency_name(code, locale='en')}") for code in SUPPORTED_CURRENCIES
    ]


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    if currency not in SUPPORTED_CURRENCIES:
        raise AmountError(f"{currency!r} is not a currency this marketplace accepts.")
    return int(get_currency_precision(currency))


def to_minor_units(amount: Decimal | str, currency: str) -> int:
    """Convert a decimal amount in major units to an exact integer of minor units.

    The rule: never round. An amount with more decimals than the currency has
    (12.345 USD, 100.5 JPY) is refused, as are negative, non-finite and
    absurdly large amounts.
    """
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except InvalidOperation as exc:
        raise AmountError("Enter an amount such as 12.50.") from exc
    if not value.is_finite():
        raise AmountError("Enter an amount such as 12.50.")
    if value < 0:
        raise AmountError("The amount cannot be negative.")
    if value > MAX_MAJOR_UNITS:
        raise AmountError(f"The amount cannot be more than {MAX_MAJOR_UNITS:,} {currency}.")
    places = exponent(currency)
    # Exact integer arithmetic on the decimal's digits: Decimal operations
    # round to the context's precision, which would break "never round".
    _, digits, power = value.as_tuple()
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0 or not isinstance(power, int):
        return 0
    shift = power + places
    if shift >= 0:
        return coefficient * int(10**shift)
    if -shift > len(digits):
        remainder = coefficient  # more decimals than the coefficient has digits
    else:
        coefficient, remainder = divmod(coefficient, int(10**-shift))
    if remainder:
        if places == 0:
            raise AmountError(f"{currency} amounts have no decimal places.")
        raise AmountError(f"{currency} amounts have at most {places} decimal places.")
    return coefficient


# What a person types as an amount: digits, optionally grouped in thousands by commas,
# and a point before the decimals ("1250", "1,250.50"); ASCII digits only.
_TYPED_AMOUNT = re.compile(r"(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.[0-9]+)?", re.ASCII)


def amount_typed_to_minor(text: str, currency: str) -> int:
    """An amount a person typed in a form, in minor units of ``currency``.

    Commas are taken only as thousands separators, where they belong: "0,30" or
    "12,50" (a decimal comma) is refused, never read as 30.00 or 1,250.00. Anything
    else that is not plainly written (an exponent, underscores, a sign, other
    scripts' digits, "NaN") is refused too; then ``to_minor_units`` checks the
    currency's decimals and the largest amount, without rounding.
    """
    text = text.strip()
    negative = text.startswith("-")
    if _TYPED_AMOUNT.fullmatch(text[1:] if negative else text) is None:
        if "," in text:
            raise AmountError(
                "Use a point before the decimals (12.50) and commas only between "
                "thousands (1,250.50)."
            )
        raise AmountError("Enter an amount such as 12.50.")
    if negative:
        raise AmountError("The amount cannot be negative.")
    return to_minor_units(text.replace(",", ""), currency)


def to_major_units(minor: int, currency: str) -> Decimal:
    """The exact decimal value of an integer amount of minor units."""
    return Decimal(minor).scaleb(-exponent(currency))


def format_amount(minor: int, currency: str, locale: str | None = None) -> str:
    """Display an amount for people, in the active language's conventions."""
    locale = locale or _locale_name(translation.get_language() or "en-us")
    return _formatted(minor, currency, locale)


# What ``babel.numbers.format_currency(amount, currency, locale=locale)`` does, with
# the lookups it repeats on every call done once: the output is a function of the
# amount, the currency and the locale only (CLDR data does not change while the
# process runs), so whole results are remembered too (a page shows the same
# figures more than once, and zero often).


@lru_cache(maxsize=64)
def _locale_name(language: str) -> str:
    return translation.to_locale(language)


@lru_cache(maxsize=64)
def _currency_pattern(locale: str) -> tuple[Locale, NumberPattern]:
    parsed = Locale.parse(locale)
    return parsed, parsed.currency_formats["standard"]


@lru_cache(maxsize=8192, typed=True)
def _formatted(minor: int, currency: str, locale: str) -> str:
    amount = to_major_units(minor, currency)  # refuses a currency not on the list, first
    parsed, pattern = _currency_pattern(locale)
    return str(pattern.apply(amount, parsed, currency=currency))
