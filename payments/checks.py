"""Proofs that the ledger is consistent, run by ``manage.py check_ledger``.

1. Every transaction's entries sum to zero in each currency.
2. Every entry is in its account's currency.
3. Every account's running balance equals the sum of its entries.
4. For every order whose payment was captured: the processor received its
   total once; the refunds posted equal the refunds that succeeded; and the
   sellers' shares plus the commission still held for the order equal what
   was captured less what was refunded.
5. Refund reservations never exceed an order's total (also a database
   constraint) and match the refunds that did not fail.

Each check is a handful of aggregate queries, whatever the size of the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from marketplace.models import Order
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction, Refund

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


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


def _sums(queryset: QuerySet[Any], key: str) -> dict[int, int]:
    """``Sum(amount_minor)`` per value of ``key``."""
    rows = queryset.values_list(key).annotate(total=Sum("amount_minor")).order_by()
    return {int(k): int(total) for k, total in rows}


def ledger_check() -> LedgerReport:
    report = LedgerReport(
        transactions=LedgerTransaction.objects.count(),
        entries=LedgerEntry.objects.count(),
        accounts=LedgerAccount.objects.count(),
    )
    problems = report.problems

    unbalanced = (
        LedgerEntry.objects.values_list("transaction__idempotency_key", "currency")
        .annotate(total=Sum("amount_minor"))
        .exclude(total=0)
        .order_by()
    )
    for key, currency, total in unbalanced:
        problems.append(f"Transaction {key} does not balance in {currency}: {total:+d}.")

    for entry_id, entry_currency, account_currency in LedgerEntry.objects.exclude(
        currency=F("account__currency")
    ).values_list("pk", "currency", "account__currency"):
        problems.append(
            f"Entry #{entry_id} is in {entry_currency} on a {account_currency} account."
        )

    drifted = LedgerAccount.objects.annotate(
        entries_total=Coalesce(Sum("entries__amount_minor"), 0)
    ).exclude(balance_minor=F("entries_total"))
    for account in drifted:
        problems.append(
            f"{account}: running balance {account.balance_minor} "
            f"but its entries sum to {account.entries_total}."
        )

    processor = Q(account__kind=Kind.PROCESSOR)
    captured = {
        int(order_id): int(total)
        for order_id, total in LedgerEntry.objects.filter(
            processor, transaction__kind=TxnKind.PAYMENT_CAPTURED
        )
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    }
    refund_orders = dict(Refund.objects.values_list("pk", "order_id"))
    refunded_in_ledger: dict[int, int] = defaultdict(int)
    for refund_id, total in (
        LedgerEntry.objects.filter(processor, transaction__kind=TxnKind.REFUND)
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    ):
        refunded_in_ledger[refund_orders[int(refund_id)]] += -int(total)
    refunds_succeeded = _sums(Refund.objects.filter(status=Refund.Status.SUCCEEDED), "order_id")
    refunds_reserved = _sums(Refund.objects.exclude(status=Refund.Status.FAILED), "order_id")
    still_held = {
        order_id: -total
        for order_id, total in _sums(
            LedgerEntry.objects.filter(
                transaction__kind__in=[TxnKind.PAYMENT_CAPTURED, TxnKind.REFUND],
                account__kind__in=[Kind.PENDING, Kind.AVAILABLE, Kind.COMMISSION],
            ),
            "order_line__order_id",
        ).items()
    }

    orders = Order.objects.values_list("pk", "total_minor", "refunded_minor", "paid_at")
    for order_id, total, refunded, paid_at in orders.iterator():
        if refunds_reserved.get(order_id, 0) != refunded:
            problems.append(
                f"Order #{order_id}: {refunded} reserved for refunds, "
                f"but its refunds that did not fail add up to {refunds_reserved.get(order_id, 0)}."
            )
        if paid_at is None:
            if order_id in captured:
                problems.append(f"Order #{order_id} is not paid but a payment was posted.")
            continue
        report.orders += 1
        got = captured.get(order_id, 0)
        if got != total:
            problems.append(f"Order #{order_id}: total {total}, captured in the ledger {got}.")
        back = refunded_in_ledger.get(order_id, 0)
        if back != refunds_succeeded.get(order_id, 0):
            problems.append(
                f"Order #{order_id}: refunds that succeeded add up to "
                f"{refunds_succeeded.get(order_id, 0)}, the ledger refunded {back}."
            )
        held = still_held.get(order_id, 0)
        if held != got - back:
            problems.append(
                f"Order #{order_id}: seller shares + commission = {held}, "
                f"but captured - refunded = {got - back}."
            )
    return report
