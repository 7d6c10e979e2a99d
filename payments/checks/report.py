"""What ``ledger_check`` reports, and the small query helpers its checks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet, Sum


@dataclass
class LedgerReport:
    transactions: int = 0
    entries: int = 0
    accounts: int = 0
    orders: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def sums(queryset: QuerySet[Any], key: str, value: str = "amount_minor") -> dict[int, int]:
    """``Sum(value)`` per value of ``key`` (one query)."""
    rows = queryset.values_list(key).annotate(total=Sum(value)).order_by()
    return {int(k): int(total) for k, total in rows if k is not None}


def pair_sums(
    queryset: QuerySet[Any], keys: tuple[str, str], value: str
) -> dict[tuple[int, str], int]:
    """``Sum(value)`` per pair of values of ``keys``, e.g. (seller id, currency) (one query)."""
    rows = queryset.values_list(*keys).annotate(total=Sum(value)).order_by()
    return {(int(a), str(b)): int(total or 0) for a, b, total in rows if a is not None}
