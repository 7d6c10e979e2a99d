"""Exact money: integer minor units, one currency per amount, no floats.

``Money`` refuses arithmetic across currencies. ``allocate`` splits an amount
into parts proportional to integer weights and never loses or invents a minor
unit. ``percentage`` applies a rate in basis points with the one rounding rule
the marketplace uses: half-up at the minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from marketplace.kernel.currencies import exponent, format_amount, to_major_units, to_minor_units

BASIS_POINTS = 10_000
# The rounding rule for every percentage of an amount (commission, reserve):
# half-up at the currency's minor unit. 10% of 0.05 USD is 0.01 USD.
ROUNDING = ROUND_HALF_UP


def is_whole_number(value: object) -> bool:
    """True for an ``int`` (and not a ``bool``, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


class CurrencyMismatch(TypeError):
    """Two amounts in different currencies were combined."""


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in minor units (cents, yen, fils) of one ISO 4217 currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not is_whole_number(self.amount):
            raise TypeError(f"Money amounts are integers of minor units, not {self.amount!r}.")
        exponent(self.currency)  # refuses an unknown currency

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | Decimal, currency: str) -> Money:
        """A typed decimal ("12.50") in major units; extra decimals are refused."""
        return cls(to_minor_units(text, currency), currency)

    def to_decimal(self) -> Decimal:
        return to_major_units(self.amount, self.currency)

    def format(self, locale: str | None = None) -> str:
        return format_amount(self.amount, self.currency, locale)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"Cannot combine Money with {type(other).__name__}.")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot combine {self.currency} with {other.currency}.")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if not is_whole_number(factor):
            raise TypeError("Money can only be multiplied by a whole number.")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __bool__(self) -> bool:
        return self.amount != 0

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        return [Money(part, self.currency) for part in allocate(self.amount, weights)]

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into parts proportional to ``weights`` that add up to ``total`` exactly.

    Largest remainder method: each part gets the floor of its exact share,
    then the minor units left over go one each to the parts with the largest
    remainders; ties go to the earlier part. A negative total is split as the
    mirror image of its absolute value. Weights are non-negative integers with
    a positive sum; a part with weight 0 gets 0.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight.")
    if any(not is_whole_number(w) or w < 0 for w in weights):
        raise ValueError("Weights must be non-negative integers.")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("At least one weight must be positive.")
    if total < 0:
        return [-part for part in allocate(-total, weights)]
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts


def percentage(amount: int, basis_points: int) -> int:
    """``basis_points``/10 000 of ``amount``, rounded half-up to a whole minor unit."""
    exact = Decimal(amount) * Decimal(basis_points) / Decimal(BASIS_POINTS)
    return int(exact.quantize(Decimal(1), rounding=ROUNDING))
