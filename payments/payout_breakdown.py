"""What a payout pays for, line by line, in figures that add up to its amount.

A payout claims every ledger entry of the seller's available account not claimed
before: earnings released from their hold, and refunds or lost disputes that came
out of available afterwards. Its amount is those entries' total, less what the
rolling reserve kept back this time, plus what earlier payouts left behind (an
earlier reserve now released, refunds that were still pending then): so the lines
are the entries, the reserve kept back, and what was carried from earlier payouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from payments.models import LedgerEntry, Payout
from payments.seller_history import LABELS


@dataclass(frozen=True)
class BreakdownLine:
    entry: LedgerEntry
    label: str
    amount_minor: int  # what it adds to the payout (the seller's side)


@dataclass(frozen=True)
class PayoutBreakdown:
    payout: Payout
    lines: list[BreakdownLine]

    @property
    def entries_total(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def kept_in_reserve(self) -> int:
        return self.payout.reserve_minor

    @property
    def carried(self) -> int:
        """What earlier payouts left for this one (positive) or this one leaves for a
        later one beyond the reserve (negative), so the figures add up exactly."""
        return self.payout.amount_minor - self.entries_total + self.kept_in_reserve


def payout_breakdown(*, payout: Payout) -> PayoutBreakdown:
    """The payout's entries, oldest first, with what each adds (one query)."""
    items = payout.breakdown.select_related(
        "entry__transaction", "entry__order_line__order"
    ).order_by("entry_id")
    return PayoutBreakdown(
        payout,
        [
            BreakdownLine(
                item.entry,
                LABELS.get(item.entry.transaction.kind, item.entry.transaction.get_kind_display()),
                -item.entry.amount_minor,
            )
            for item in items
        ],
    )
