"""What a payout pays for, line by line, in figures that add up to its amount.

A payout claims every ledger entry of the seller's available account not claimed
before: earnings released from their hold, and refunds or lost disputes that came
out of available afterwards. Its amount is those entries' total, less what the
rolling reserve kept back this time, plus what earlier payouts left behind (an
earlier reserve now released, refunds that were still pending then): so the lines
are the entries, the reserve kept back, and what was carried from earlier payouts.

``payout_figures`` sums the same entries the way a payout list shows them (as
Stripe's Express dashboard does): gross (what customers paid for the sales it
pays), fees (commission and processor fees on them), refunds (refunds and disputes,
before or after the hold), and net, the payout's amount. A released sale's entry is
its share less what came out of it while pending, so its gross and fees come from
its order line and what came out of it from its pending entries; whatever else the
payout holds (a reserve kept back or released, an adjustment, money taken back from
an earlier transfer) is ``other``, so that gross − fees − refunds + other = net,
exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Sum

from accounts.models import Seller
from payments.ledger.labels import LABELS
from payments.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutMethod,
)

TxnKind = LedgerTransaction.Kind
REFUND_KINDS = (
    TxnKind.REFUND,
    TxnKind.REFUND_REVERSED,
    TxnKind.DISPUTE_OPENED,
    TxnKind.DISPUTE_WON,
    TxnKind.DISPUTE_LOST,
)


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


@dataclass(frozen=True)
class PayoutFigures:
    """A payout in four figures (the seller's side, minor units): gross − fees − refunds
    + other = net, which is the payout's amount."""

    currency: str
    gross: int  # what customers paid for the sales it pays
    fees: int  # commission and processor fees charged on those sales
    refunds: int  # the seller's part of refunds and disputes, before or after the hold
    other: int  # reserve kept back or released, adjustments, carried from other payouts
    net: int  # the payout's amount


def payout_figures(*, payouts: Sequence[Payout]) -> dict[int, PayoutFigures]:
    """Gross, fees, refunds and net of each payout, by payout id, from its breakdown
    (two queries, whatever the number of payouts or entries)."""
    if not payouts:
        return {}
    ids = [payout.pk for payout in payouts]
    gross: dict[int, int] = dict.fromkeys(ids, 0)
    fees: dict[int, int] = dict.fromkeys(ids, 0)
    refunds: dict[int, int] = dict.fromkeys(ids, 0)
    # The payout's own entries, by kind; a released sale's with its line's price and
    # commission (one release entry per line).
    claimed = (
        PayoutEntry.objects.filter(payout_id__in=ids)
        .values_list("payout_id", "entry__transaction_kind")
        .annotate(
            total=Sum("entry__amount_minor"),
            sold=Sum("entry__order_line__gross_minor"),
            commission=Sum("entry__order_line__commission_minor"),
        )
        .order_by()
    )
    for payout_id, kind, total, sold, commission in claimed:
        if kind == TxnKind.HOLD_RELEASED:
            gross[payout_id] += int(sold or 0)
            fees[payout_id] += int(commission or 0)
        elif kind in REFUND_KINDS:
            refunds[payout_id] += int(total or 0)
    # What came out of those sales while pending: fees, refunds, disputes (the capture
    # and the release itself excluded), per payout that pays the sale's release.
    taken = (
        LedgerEntry.objects.filter(
            account__kind=LedgerAccount.Kind.PENDING,
            order_line__ledger_entries__transaction_kind=TxnKind.HOLD_RELEASED,
            order_line__ledger_entries__payout_item__payout_id__in=ids,
        )
        .exclude(transaction_kind__in=(TxnKind.PAYMENT_CAPTURED, TxnKind.HOLD_RELEASED))
        .values_list("order_line__ledger_entries__payout_item__payout_id", "transaction_kind")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    for payout_id, kind, total in taken:
        if kind == TxnKind.PROCESSOR_FEE:
            fees[payout_id] += int(total or 0)
        elif kind in REFUND_KINDS:
            refunds[payout_id] += int(total or 0)
    return {
        payout.pk: PayoutFigures(
            currency=payout.currency,
            gross=gross[payout.pk],
            fees=fees[payout.pk],
            refunds=refunds[payout.pk],
            other=payout.amount_minor - (gross[payout.pk] - fees[payout.pk] - refunds[payout.pk]),
            net=payout.amount_minor,
        )
        for payout in payouts
    }


def payout_bank_last4(payout: Payout, seller: Seller) -> str:
    """The last four digits of the bank account the payout went to: the processor's,
    else, for a manual payout, those of the account on the seller's profile ("" when
    not known)."""
    if payout.bank_last4:
        return payout.bank_last4
    if payout.method == PayoutMethod.MANUAL:
        return seller.bank_account_number[-4:]
    return ""
