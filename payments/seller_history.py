"""A seller's ledger as a readable history: one row per transaction that touched their
accounts, with what it did to what the platform owes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from accounts.models import Seller
from marketplace.models import SellerOrder
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
OWED = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)
LABELS: dict[str, str] = {
    TxnKind.PAYMENT_CAPTURED: "Sale",
    TxnKind.PROCESSOR_FEE: "Processor fee",
    TxnKind.HOLD_RELEASED: "Earnings available",
    TxnKind.REFUND: "Refund",
    TxnKind.PAYOUT_SENT: "Payout sent",
    TxnKind.PAYOUT_PAID: "Payout paid",
    TxnKind.PAYOUT_FAILED: "Payout failed",
    TxnKind.PAYOUT_RETURNED: "Payout returned by your bank",
    TxnKind.TRANSFER_REVERSED: "Taken back from a payout (refund or dispute)",
    TxnKind.DISPUTE_OPENED: "Dispute opened",
    TxnKind.DISPUTE_WON: "Dispute won",
    TxnKind.DISPUTE_LOST: "Dispute lost",
    TxnKind.ADJUSTMENT: "Adjustment",
}


@dataclass(frozen=True)
class HistoryRow:
    transaction: LedgerTransaction
    entries: list[LedgerEntry]
    label: str
    change: int  # what it did to the seller's balance (pending + available + in transit)
    moved: int  # for moves between the seller's accounts: how much moved

    @property
    def order_id(self) -> int | None:
        """The order a sale, fee, release or refund is about (its entries name the lines)."""
        return next((e.order_line.order_id for e in self.entries if e.order_line), None)

    @property
    def is_sale(self) -> bool:
        return self.transaction.kind == TxnKind.PAYMENT_CAPTURED

    @property
    def seller_order_id(self) -> int | None:
        """The seller's part of that order."""
        return next((e.order_line.seller_order_id for e in self.entries if e.order_line), None)

    @property
    def payout_id(self) -> int | None:
        ref = self.transaction
        return int(ref.reference_id) if ref.reference_type == "payout" else None


def seller_transactions(
    *,
    seller: Seller,
    currency: str,
    kind: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    seller_order: SellerOrder | None = None,
) -> QuerySet[LedgerTransaction]:
    """The transactions that touched the seller's accounts in ``currency`` (optionally
    only those of one kind, in a date range, or about one seller order), newest
    first, each with ``mine``: its entries on those accounts (prefetched)."""
    mine = LedgerEntry.objects.filter(
        account__seller=seller, account__currency=currency
    ).select_related("account", "order_line")
    txns = LedgerTransaction.objects.filter(
        entries__account__seller=seller, entries__account__currency=currency
    )
    if kind:
        txns = txns.filter(kind=kind)
    if seller_order is not None:
        txns = txns.filter(entries__order_line__seller_order=seller_order)
    if since is not None:
        txns = txns.filter(created_at__gte=since)
    if until is not None:
        txns = txns.filter(created_at__lt=until)
    return (
        txns.distinct()
        .order_by("-created_at", "-id")
        .prefetch_related(Prefetch("entries", queryset=mine, to_attr="mine"))
    )


def history_rows(transactions: list[LedgerTransaction]) -> list[HistoryRow]:
    rows = []
    for txn in transactions:
        entries: list[LedgerEntry] = getattr(txn, "mine", [])
        owed = [e for e in entries if e.account.kind in OWED]
        change = -sum(e.amount_minor for e in owed)
        moved = sum(-e.amount_minor for e in owed if e.amount_minor < 0) if change == 0 else 0
        label = LABELS.get(str(txn.kind), str(txn.get_kind_display()))
        rows.append(HistoryRow(txn, entries, label, change, moved))
    return rows
