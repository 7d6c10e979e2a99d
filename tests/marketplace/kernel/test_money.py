from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.kernel.money import CurrencyMismatch, Money, allocate, percentage


def test_money_arithmetic_in_one_currency():
    a, b = Money(1050, "USD"), Money(250, "USD")

    assert a + b == Money(1300, "USD")
    assert a - b == Money(800, "USD")
    assert -a == Money(-1050, "USD")
    assert a * 3 == 3 * a == Money(3150, "USD")
    assert b < a and a >= b
    assert not Money.zero("JPY")


@pytest.mark.parametrize(
    "operation",
    [
        lambda: Money(1, "USD") + Money(1, "EUR"),
        lambda: Money(1, "USD") - Money(1, "EUR"),
        lambda: Money(1, "USD") < Money(1, "EUR"),
    ],
)
def test_money_refuses_mixed_currencies(operation):
    with pytest.raises(CurrencyMismatch):
        operation()


@pytest.mark.parametrize("amount", [1.5, "100", None, True])
def test_money_amounts_are_integers(amount):
    with pytest.raises(TypeError):
        Money(amount, "USD")


def test_money_refuses_floats_as_factors_and_unknown_currencies():
    with pytest.raises(TypeError):
        Money(100, "USD") * 1.1
    with pytest.raises(ValueError):
        Money(100, "XXX")


def test_money_parse_and_format():
    assert Money.parse("1.250", "KWD") == Money(1250, "KWD")
    assert Money(1999, "USD").format("en_US") == "$19.99"
    assert str(Money(500, "JPY")) == "500 JPY"


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (5, [1, 1], [3, 2]),
        (1000, [530, 4468], [106, 894]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (7, [0, 3, 0], [0, 7, 0]),
        (0, [2, 5], [0, 0]),
    ],
)
def test_allocate_examples(total, weights, parts):
    assert allocate(total, weights) == parts


@pytest.mark.parametrize("weights", [[], [0, 0], [-1, 2], [1.5, 1]])
def test_allocate_refuses_bad_weights(weights):
    with pytest.raises(ValueError):
        allocate(100, weights)


@given(
    total=st.integers(min_value=-(10**12), max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocate_loses_no_minor_unit_and_stays_within_one_unit_of_exact(total, weights):
    parts = allocate(total, weights)

    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, weight_sum)
        assert abs(part - exact) < 1
        if weight == 0:
            assert part == 0
    assert allocate(total, weights) == parts  # deterministic


@pytest.mark.parametrize(
    ("amount", "bps", "result"),
    [(4998, 1000, 500), (5, 1000, 1), (4, 1000, 0), (15, 1000, 2), (25, 1000, 3), (100, 0, 0)],
)
def test_percentage_rounds_half_up_at_the_minor_unit(amount, bps, result):
    assert percentage(amount, bps) == result
