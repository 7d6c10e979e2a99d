"""What sellers and the platform have, per currency, read from the ledger.

Amounts are shown from the owner's side: a seller's ``available`` is what the
platform owes them (negative when they owe the platform, after a refund that
came after a payout). Reads use the accounts' running balances, which the
posting service keeps equal to the sum of their entries (``check_ledger``
proves it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from accounts.models import Seller
from payments.models import LedgerAccount, LedgerTransaction

Kind = LedgerAccount.Kind


@dataclass(frozen=True, slots=True)
class SellerBalance:
    currency: str
    pending: int
    available: int
    in_transit: int
    paid_out: int

    @property
    def total_owed(self) -> int:
        """Everything the platform still owes the seller."""
        return self.pending + self.available + self.in_transit


@dataclass(frozen=True, slots=True)
class PlatformBalance:
    currency: str
    commission_earned: int
    processor_fees: int
    cash_at_processor: int
    paid_from_bank: int = 0


def seller_currencies(seller: Seller) -> list[str]:
    """The currencies a seller has money in, and their default currency, sorted."""
    held = LedgerAccount.objects.filter(seller=seller).values_list("currency", flat=True)
    return sorted({seller.default_currency} | set(held.distinct()))


def seller_balance(*, seller: Seller, currency: str) -> SellerBalance:
    """Pending, available, in transit and paid-out totals of one seller in one currency
    (one query)."""
    found = _balances(seller=seller, currency=currency)
    return found[currency][0] if currency in found else _nothing(currency)


def seller_balances(
    *, seller: Seller, paid_since: datetime | None = None
) -> dict[str, tuple[SellerBalance, int]]:
    """Per currency the seller has accounts in: their balance, and what was paid out to
    them since ``paid_since`` (0 without it), from one query (the seller's dashboard)."""
    return _balances(seller=seller, paid_since=paid_since)


def _nothing(currency: str) -> SellerBalance:
    return SellerBalance(currency=currency, pending=0, available=0, in_transit=0, paid_out=0)


# The seller's accounts with their running balances; the in-transit account's row also
# sums its payout-paid entries less returned ones (all, and since a moment) in subqueries
# that read the (account, kind, time) index only. Plain SQL: this is read on every balance display,
# and building the same query with the ORM costs ten times its execution in Python.
_BALANCES_SQL = """
    SELECT a.currency, a.kind, a.balance_minor,
      CASE WHEN a.kind = %(in_transit)s THEN (
        SELECT SUM(e.amount_minor) FROM payments_ledgerentry e
        WHERE e.account_id = a.id AND e.transaction_kind IN (%(paid)s, %(returned)s)
      ) END,
      CASE WHEN a.kind = %(in_transit)s AND %(since)s IS NOT NULL THEN (
        SELECT SUM(e.amount_minor) FROM payments_ledgerentry e
        WHERE e.account_id = a.id AND e.transaction_kind IN (%(paid)s, %(returned)s)
          AND e.created_at >= %(since)s
      ) END
    FROM payments_ledgeraccount a
    WHERE a.seller_id = %(seller)s AND (%(currency)s IS NULL OR a.currency = %(currency)s)
"""


def _balances(
    *, seller: Seller, currency: str | None = None, paid_since: datetime | None = None
) -> dict[str, tuple[SellerBalance, int]]:
    """Per currency (one, or all the seller's): the balance, and what was paid out since
    ``paid_since`` (0 without it)."""
    params = {
        "in_transit": Kind.IN_TRANSIT.value,
        "paid": LedgerTransaction.Kind.PAYOUT_PAID.value,
        # A bank payout returned after it was paid is not paid out any more.
        "returned": LedgerTransaction.Kind.PAYOUT_RETURNED.value,
        "since": connection.ops.adapt_datetimefield_value(paid_since),
        "seller": seller.pk,
        "currency": currency,
    }
    with connection.cursor() as cursor:
        cursor.execute(_BALANCES_SQL, params)
        rows = cursor.fetchall()
    balances: dict[str, dict[str, int]] = {}
    paid_out: dict[str, tuple[int, int]] = {}
    for row_currency, kind, balance, everything, recently in rows:
        balances.setdefault(row_currency, {})[kind] = int(balance)
        if kind == Kind.IN_TRANSIT:
            paid_out[row_currency] = (int(everything or 0), int(recently or 0))
    result: dict[str, tuple[SellerBalance, int]] = {}
    for row_currency, by_kind in balances.items():
        everything, recently = paid_out.get(row_currency, (0, 0))
        result[row_currency] = (
            SellerBalance(
                currency=row_currency,
                pending=-by_kind.get(Kind.PENDING, 0),
                available=-by_kind.get(Kind.AVAILABLE, 0),
                in_transit=-by_kind.get(Kind.IN_TRANSIT, 0),
                paid_out=everything,
            ),
            recently,
        )
    return result


def platform_balance(*, currency: str) -> PlatformBalance:
    """Commission earned, processor fees paid, cash held at the processor, and what
    manual payouts paid from the platform's bank."""
    accounts = LedgerAccount.objects.filter(seller__isnull=True, currency=currency)
    balances = {account.kind: account.balance for account in accounts.with_balance()}
    return PlatformBalance(
        currency=currency,
        commission_earned=-balances.get(Kind.COMMISSION, 0),
        processor_fees=balances.get(Kind.PROCESSOR_FEES, 0),
        cash_at_processor=balances.get(Kind.PROCESSOR, 0),
        paid_from_bank=-balances.get(Kind.BANK, 0),
    )
