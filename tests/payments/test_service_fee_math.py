"""The customer service fee's arithmetic, in JPY, USD and KWD (no database): the fee
on an order (percentage half-up + fixed, below the lines' total) and its pro-rata
refunds (cumulative: all lines refunded gives back exactly the fee, never more, and
at each step at most one minor unit above the exact pro rata)."""

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.kernel.money import percentage
from payments.models import ServiceFee
from payments.revenue.service_fees import service_fee_amount, service_fee_refund_part

CURRENCIES = st.sampled_from(["JPY", "USD", "KWD"])


def fee_of(currency, bps, fixed):
    return ServiceFee(currency=currency, percentage_bps=bps, fixed_fee_minor=fixed)


def test_a_fee_is_percentage_half_up_plus_fixed():
    assert service_fee_amount(fee_of("USD", 250, 30), 1000) == 55  # 25 + 30
    assert service_fee_amount(fee_of("USD", 250, 0), 1010) == 25  # 25.25 -> 25
    assert service_fee_amount(fee_of("USD", 250, 0), 1020) == 26  # 25.5 -> 26 (half-up)
    assert service_fee_amount(fee_of("JPY", 0, 100), 5000) == 100
    assert service_fee_amount(fee_of("KWD", 100, 5), 12_345) == 128  # 123.45 -> 123, + 5


def test_a_fee_never_reaches_the_lines_total():
    assert service_fee_amount(fee_of("USD", 0, 500), 300) == 299
    assert service_fee_amount(fee_of("USD", 10_000, 0), 1) == 0
    assert service_fee_amount(None, 1000) == 0


@given(
    currency=CURRENCIES,
    bps=st.integers(0, 10_000),
    fixed=st.integers(0, 10**7),
    lines=st.integers(1, 10**10),
)
def test_the_fee_is_the_rule_and_below_the_lines(currency, bps, fixed, lines):
    amount = service_fee_amount(fee_of(currency, bps, fixed), lines)
    assert isinstance(amount, int)
    assert 0 <= amount < lines
    assert amount == min(percentage(lines, bps) + fixed, lines - 1)


@st.composite
def refund_sequences(draw):
    """A lines' gross, a fee below it, and a sequence of line refunds adding up to at most
    the gross (each above zero)."""
    gross = draw(st.integers(1, 10**9))
    fee = draw(st.integers(0, gross - 1)) if gross > 1 else 0
    steps = []
    left = gross
    for _ in range(draw(st.integers(1, 12))):
        if left == 0:
            break
        steps.append(draw(st.integers(1, left)))
        left -= steps[-1]
    if draw(st.booleans()) and left:
        steps.append(left)  # refund everything that is left
    return gross, fee, steps


@settings(max_examples=300)
@given(refund_sequences(), CURRENCIES)
def test_partial_refunds_give_back_the_fee_pro_rata_and_exactly_in_full(case, currency):
    gross, fee, steps = case
    refunded_lines = refunded_fee = 0
    for step in steps:
        part = service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=refunded_fee,
            lines_gross_minor=gross,
            lines_refunded_after_minor=refunded_lines + step,
        )
        assert part >= 0
        refunded_lines += step
        refunded_fee += part
        assert refunded_fee <= fee  # never more than the fee
        assert refunded_fee <= Fraction(fee * refunded_lines, gross) + 1  # pro rata + 1
    if refunded_lines == gross:
        assert refunded_fee == fee  # every line refunded: the whole fee, exactly


@settings(max_examples=200)
@given(refund_sequences(), st.data())
def test_a_failed_refund_puts_its_fee_back_and_the_rest_still_ends_exact(case, data):
    """A refund that fails releases its lines and its fee part; refunding every line
    afterwards still gives back exactly the fee."""
    gross, fee, steps = case
    live = []  # (lines, fee part) of refunds that did not fail
    for step in steps:
        lines_now = sum(lines for lines, _ in live)
        fee_now = sum(part for _, part in live)
        part = service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=fee_now,
            lines_gross_minor=gross,
            lines_refunded_after_minor=lines_now + step,
        )
        live.append((step, part))
        if data.draw(st.booleans()):
            live.pop(data.draw(st.integers(0, len(live) - 1)))  # that refund failed
        assert 0 <= sum(part for _, part in live) <= fee
    lines_now = sum(lines for lines, _ in live)
    fee_now = sum(part for _, part in live)
    if lines_now < gross:
        fee_now += service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=fee_now,
            lines_gross_minor=gross,
            lines_refunded_after_minor=gross,
        )
    assert fee_now == fee
