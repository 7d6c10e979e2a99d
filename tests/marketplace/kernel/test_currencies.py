import re
from decimal import Decimal

import pytest
from babel.numbers import format_currency
from django.conf import global_settings
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.kernel.currencies import (
    MAX_MAJOR_UNITS,
    SUPPORTED_CURRENCIES,
    AmountError,
    amount_typed_to_minor,
    exponent,
    format_amount,
    to_major_units,
    to_minor_units,
)


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)])
def test_exponents_come_from_cldr(currency, places):
    assert exponent(currency) == places


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("0", "USD", 0),
        ("1500", "JPY", 1500),
        ("1500.0", "JPY", 1500),
        ("1.250", "KWD", 1250),
        ("0.001", "KWD", 1),
        (" 7.05 ", "EUR", 705),
    ],
)
def test_to_minor_units_is_exact(text, currency, minor):
    assert to_minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("12.345", "USD", "USD amounts have at most 2 decimal places."),
        ("100.5", "JPY", "JPY amounts have no decimal places."),
        ("1.2345", "KWD", "KWD amounts have at most 3 decimal places."),
        ("-1", "USD", "The amount cannot be negative."),
        ("abc", "USD", "Enter an amount such as 12.50."),
        ("NaN", "USD", "Enter an amount such as 12.50."),
        ("Infinity", "USD", "Enter an amount such as 12.50."),
        ("", "USD", "Enter an amount such as 12.50."),
        ("10000000.01", "USD", "The amount cannot be more than 10,000,000 USD."),
    ],
)
def test_to_minor_units_refuses_what_it_cannot_represent(text, currency, message):
    with pytest.raises(AmountError, match=message.replace(".", r"\.")):
        to_minor_units(text, currency)


def test_an_unsupported_currency_is_refused():
    with pytest.raises(AmountError):
        to_minor_units("1", "XBT")


@given(
    currency=st.sampled_from(SUPPORTED_CURRENCIES),
    minor=st.integers(min_value=0, max_value=MAX_MAJOR_UNITS * 100),
)
def test_minor_and_major_units_round_trip_exactly(currency, minor):
    if to_major_units(minor, currency) > MAX_MAJOR_UNITS:
        return
    assert to_minor_units(to_major_units(minor, currency), currency) == minor
    assert to_minor_units(str(to_major_units(minor, currency)), currency) == minor


@given(
    currency=st.sampled_from(SUPPORTED_CURRENCIES),
    amount=st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False),
)
def test_an_amount_is_accepted_only_when_it_fits_the_minor_unit(currency, amount):
    fits = amount == amount.quantize(Decimal(1).scaleb(-exponent(currency)))
    try:
        minor = to_minor_units(amount, currency)
    except AmountError:
        assert not fits
    else:
        assert fits
        assert Decimal(minor).scaleb(-exponent(currency)) == amount


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (1250, "USD", "en_US", "$12.50"),
        (1500, "JPY", "en_US", "¥1,500"),
        (1250, "KWD", "en_US", "KWD1.250"),
        (123450, "EUR", "fr_FR", "1\u202f234,50\xa0€"),
    ],
)
def test_format_amount_uses_the_locale(minor, currency, locale, shown):
    assert format_amount(minor, currency, locale=locale) == shown


# format_amount keeps Babel's parsed locales and patterns, and its results: it must
# show exactly what babel.numbers.format_currency shows, for every currency, sign and
# size, in every language Django has (and a few locales with unusual grouping,
# symbols or numbering), called once or many times.
LOCALES = sorted(
    {translation.to_locale(code) for code, _ in global_settings.LANGUAGES}
    - {"udm"}  # Udmurt: Django has a translation, CLDR no locale
    | {"en_IN", "de_CH", "ar_EG", "fa_IR", "hi_IN", "es_CO", "root"}
)


@given(
    currency=st.sampled_from(SUPPORTED_CURRENCIES),
    locale=st.sampled_from(LOCALES),
    minor=st.integers(min_value=-(MAX_MAJOR_UNITS * 1000), max_value=MAX_MAJOR_UNITS * 1000)
    | st.integers(min_value=-1100, max_value=1100),
)
@settings(max_examples=600, deadline=None)  # the first call loads a locale from disk
def test_format_amount_shows_what_babel_shows(currency, locale, minor):
    expected = format_currency(to_major_units(minor, currency), currency, locale=locale)
    assert format_amount(minor, currency, locale=locale) == expected
    assert format_amount(minor, currency, locale=locale) == expected  # remembered


def test_format_amount_follows_the_active_language():
    with translation.override("fr"):
        assert format_amount(123450, "EUR") == "1\u202f234,50\xa0€"
    with translation.override("en-us"):
        assert format_amount(-123450, "EUR") == "-€1,234.50"
        assert format_amount(-1, "KWD") == "-KWD0.001"
        assert format_amount(0, "JPY") == "¥0"
    with translation.override(None):
        assert format_amount(1250, "USD") == "$12.50"


def test_format_amount_refuses_an_unknown_currency_every_time():
    for _ in range(2):
        with pytest.raises(AmountError):
            format_amount(100, "XBT")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9999999.9999999999999999999999", "USD amounts have at most 2 decimal places."),
        ("1E-9999999999", "USD amounts have at most 2 decimal places."),
        ("12.3450000000000000000000000001", "USD amounts have at most 2 decimal places."),
    ],
)
def test_long_or_tiny_decimals_are_refused_never_rounded(text, message):
    with pytest.raises(AmountError, match=re.escape(message)):
        to_minor_units(text, "USD")


@pytest.mark.parametrize("text", ["0E-9999999999", "0E+9999999999", "0.000", "1.50000000000"])
def test_zeros_and_trailing_zeros_are_exact_and_fast(text):
    assert to_minor_units(text, "USD") == (150 if text.startswith("1.5") else 0)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("1,250.50", "USD", 125050),
        ("5,000", "JPY", 5000),
        ("1,234,567.125", "KWD", 1234567125),
        (" 0.30 ", "USD", 30),
    ],
)
def test_a_typed_amount_takes_commas_between_thousands_only(text, currency, minor):
    assert amount_typed_to_minor(text, currency) == minor


COMMA = "Use a point before the decimals (12.50) and commas only between thousands (1,250.50)."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A decimal comma (as typed in much of Europe) is not a thousands separator:
        # "0,30" must not become 30.00, nor "12,50" 1,250.00.
        ("0,30", COMMA),
        ("12,50", COMMA),
        ("1,,0", COMMA),
        ("1,2345", COMMA),
        ("1_0", "Enter an amount such as 12.50."),
        ("+5", "Enter an amount such as 12.50."),
        ("１２", "Enter an amount such as 12.50."),
        ("1e3", "Enter an amount such as 12.50."),
        ("NaN", "Enter an amount such as 12.50."),
        ("-1", "The amount cannot be negative."),
        ("-1,000", "The amount cannot be negative."),
        ("1.001", "USD amounts have at most 2 decimal places."),
    ],
)
def test_a_typed_amount_refuses_what_a_person_did_not_mean(text, message):
    with pytest.raises(AmountError, match=re.escape(message)):
        amount_typed_to_minor(text, "USD")
