"""A seller's ledger as a readable history.

Two readings:

- ``seller_transactions`` / ``history_rows``: one row per transaction that touched the
  seller's accounts, with what it did to what the platform owes them (an order's
  movements on its page);
- ``running_balances``: the Transactions page. One row per business event, a payout's
  transactions (sent, paid, failed, returned) grouped into one row with their net
  effect, and after each row the balance of the seller's pending and available
  accounts. The balances are running sums of the entries in the database (a window
  over every row, in the order they are listed), so they are right on every page and
  under any filter: the newest row's balance is the account's balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from accounts.models import Seller
from marketplace.models import SellerOrder
from payments.ledger.labels import LABELS
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
OWED = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)


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


# --- Running balances -------------------------------------------------------------------------

# A payout's own transactions: grouped into one row per payout.
PAYOUT_KINDS = (
    TxnKind.PAYOUT_SENT,
    TxnKind.PAYOUT_TRANSFERRED,
    TxnKind.PAYOUT_PAID,
    TxnKind.PAYOUT_FAILED,
    TxnKind.PAYOUT_RETURNED,
)


@dataclass(frozen=True)
class BalanceRow:
    """One row of the Transactions page: one transaction, or all of one payout's.

    Amounts are the seller's side (positive: owed to them). ``pending_after`` and
    ``available_after`` are the accounts' balances once this row and every row
    listed below it (older) are counted."""

    transactions: list[LedgerTransaction]
    payout_id: int | None
    pending: int  # what the row did to the pending account
    available: int  # ... to the available account
    in_transit: int
    disputed: int
    pending_after: int
    available_after: int
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def at(self) -> datetime:
        return min(txn.created_at for txn in self.transactions)

    @property
    def kinds(self) -> set[str]:
        return {str(txn.kind) for txn in self.transactions}

    @property
    def change(self) -> int:
        """What it did to everything the platform owes the seller."""
        return self.pending + self.available + self.in_transit + self.disputed

    @property
    def moved(self) -> int:
        """For a move between the seller's accounts: how much moved."""
        return sum(-e.amount_minor for e in self.entries if e.amount_minor < 0)

    @property
    def label(self) -> str:
        if self.payout_id is not None:
            kinds = self.kinds
            if TxnKind.PAYOUT_RETURNED in kinds:
                state = "returned by your bank"
            elif TxnKind.PAYOUT_FAILED in kinds:
                state = "failed: the money is available again"
            elif TxnKind.PAYOUT_PAID in kinds:
                state = "paid to your bank"
            else:
                state = "on its way to your bank"
            return f"Payout #{self.payout_id} {state}"
        txn = self.transactions[0]
        return LABELS.get(str(txn.kind), str(txn.get_kind_display()))

    @property
    def description(self) -> str:
        return "" if self.payout_id is not None else self.transactions[0].description

    @property
    def is_sale(self) -> bool:
        return self.payout_id is None and self.transactions[0].kind == TxnKind.PAYMENT_CAPTURED

    @property
    def tells_sale_story(self) -> bool:
        """A sale or a refund of one: its line shows where the sale's earnings stand."""
        kind = self.transactions[0].kind
        return self.payout_id is None and kind in (TxnKind.PAYMENT_CAPTURED, TxnKind.REFUND)

    @property
    def order_id(self) -> int | None:
        return next((e.order_line.order_id for e in self.entries if e.order_line), None)

    @property
    def seller_order_id(self) -> int | None:
        return next((e.order_line.seller_order_id for e in self.entries if e.order_line), None)


# Per transaction on the seller's accounts in one currency: its group (a payout's
# transactions share one: minus the payout's id; any other transaction is its own:
# its id) and what it did to pending and available. Per group: where it is listed
# (its first transaction) and its running balances, summed over every group up to
# it in listing order by a window. Plain SQL: the ORM cannot filter on a window's
# result without losing the rows before it, which the balances need.
_GROUPS_SQL = """
WITH txn AS (
  SELECT t.id, t.created_at, t.kind,
    CASE WHEN t.reference_type = 'payout' AND t.kind IN
      (%(sent)s, %(transferred)s, %(paid)s, %(failed)s, %(returned)s)
      THEN -CAST(t.reference_id AS BIGINT) ELSE t.id END AS grp,
    SUM(CASE WHEN a.kind = %(pending)s THEN e.amount_minor ELSE 0 END) AS pending,
    SUM(CASE WHEN a.kind = %(available)s THEN e.amount_minor ELSE 0 END) AS available
  FROM payments_ledgerentry e
  JOIN payments_ledgeraccount a ON a.id = e.account_id
  JOIN payments_ledgertransaction t ON t.id = e.transaction_id
  WHERE a.seller_id = %(seller)s AND a.currency = %(currency)s
  GROUP BY t.id, t.created_at, t.kind, t.reference_type, t.reference_id
), grp AS (
  SELECT grp, MIN(created_at) AS at, MIN(id) AS first_id,
    SUM(pending) AS pending, SUM(available) AS available,
    MAX(CASE WHEN kind = %(kind)s THEN 1 ELSE 0 END) AS of_kind
  FROM txn GROUP BY grp
), running AS (
  SELECT grp, at, first_id, of_kind,
    SUM(pending) OVER (ORDER BY at, first_id ROWS UNBOUNDED PRECEDING) AS pending_after,
    SUM(available) OVER (ORDER BY at, first_id ROWS UNBOUNDED PRECEDING) AS available_after
  FROM grp
)
"""
_SHOWN = """
WHERE (%(kind)s = '' OR of_kind = 1)
  AND (%(since)s IS NULL OR at >= %(since)s) AND (%(until)s IS NULL OR at < %(until)s)
"""
# Constant strings only (every value is a parameter).
_PAGE_SQL = "".join(
    (
        _GROUPS_SQL,
        "SELECT grp, pending_after, available_after FROM running",
        _SHOWN,
        "ORDER BY at DESC, first_id DESC LIMIT %(limit)s OFFSET %(offset)s",
    )
)
_COUNT_SQL = "".join((_GROUPS_SQL, "SELECT COUNT(*) FROM running", _SHOWN))


class RunningBalances:
    """The seller's rows in one currency, newest first, for ``Paginator``: ``count()``
    is one query, a slice is three (the rows and their balances, the transactions, their
    entries on the seller's accounts), whatever the page's size or position."""

    def __init__(
        self,
        *,
        seller: Seller,
        currency: str,
        kind: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        self.seller, self.currency = seller, currency
        self.params: dict[str, Any] = {
            "sent": TxnKind.PAYOUT_SENT.value,
            "transferred": TxnKind.PAYOUT_TRANSFERRED.value,
            "paid": TxnKind.PAYOUT_PAID.value,
            "failed": TxnKind.PAYOUT_FAILED.value,
            "returned": TxnKind.PAYOUT_RETURNED.value,
            "pending": Kind.PENDING.value,
            "available": Kind.AVAILABLE.value,
            "seller": seller.pk,
            "currency": currency,
            "kind": kind,
            "since": connection.ops.adapt_datetimefield_value(since),
            "until": connection.ops.adapt_datetimefield_value(until),
        }
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            with connection.cursor() as cursor:
                cursor.execute(_COUNT_SQL, self.params)
                self._count = int(cursor.fetchone()[0])
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[BalanceRow]:
        if not isinstance(index, slice):
            raise TypeError("Take a slice of the rows.")
        start = index.start or 0
        stop = index.stop if index.stop is not None else self.count()
        with connection.cursor() as cursor:
            cursor.execute(
                _PAGE_SQL, {**self.params, "limit": max(stop - start, 0), "offset": start}
            )
            groups = [(int(g), int(p or 0), int(a or 0)) for g, p, a in cursor.fetchall()]
        return self._rows(groups)

    def _rows(self, groups: list[tuple[int, int, int]]) -> list[BalanceRow]:
        singles = [grp for grp, _, _ in groups if grp > 0]
        payouts = [str(-grp) for grp, _, _ in groups if grp < 0]
        found = seller_transactions(seller=self.seller, currency=self.currency).filter(
            Q(pk__in=singles)
            | Q(reference_type="payout", reference_id__in=payouts, kind__in=PAYOUT_KINDS)
        )
        by_group: dict[int, list[LedgerTransaction]] = {}
        for txn in found:
            grouped = txn.reference_type == "payout" and txn.kind in PAYOUT_KINDS
            grp = -int(txn.reference_id) if grouped else txn.pk
            by_group.setdefault(grp, []).append(txn)
        rows = []
        for grp, pending_after, available_after in groups:
            txns = sorted(by_group.get(grp, []), key=lambda t: (t.created_at, t.pk))
            if not txns:
                continue  # gone between the two reads (cannot happen: append-only)
            entries = [e for t in txns for e in getattr(t, "mine", [])]
            sums = {kind: 0 for kind in OWED}
            for entry in entries:
                sums[entry.account.kind] = sums.get(entry.account.kind, 0) - entry.amount_minor
            rows.append(
                BalanceRow(
                    transactions=txns,
                    payout_id=-grp if grp < 0 else None,
                    pending=sums[Kind.PENDING],
                    available=sums[Kind.AVAILABLE],
                    in_transit=sums[Kind.IN_TRANSIT],
                    disputed=sums[Kind.DISPUTED],
                    pending_after=-pending_after,
                    available_after=-available_after,
                    entries=entries,
                )
            )
        return rows


def running_balances(
    *,
    seller: Seller,
    currency: str,
    kind: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> RunningBalances:
    """The Transactions page's rows (see ``RunningBalances``): optionally only rows with a
    transaction of one kind, or listed in a date range; the balances count every row."""
    return RunningBalances(seller=seller, currency=currency, kind=kind, since=since, until=until)
