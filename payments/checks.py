"""Proofs that the ledger is consistent, run by ``manage.py check_ledger``.

1. Every transaction has entries, and they sum to zero in each currency.
2. Every entry is in its account's currency.
3. Every account's running balance equals the sum of its entries.
4. For every order whose payment was captured, the processor received its
   total once, and for every line, the seller's share and the commission
   still held in the ledger (pending, available, held for a dispute) equal
   the line's parts less what succeeded refunds gave back and lost disputes
   took of each.
5. Every refund that succeeded is in the ledger for its amount, and no other
   refund is.
6. The refund counters on lines, seller orders and orders equal the refunds
   that did not fail.

The work is a fixed number of queries, whatever the size of the ledger; the
per-order and per-line comparisons stream over the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from marketplace.models import Order, OrderLine, SellerOrder
from payments.models import (
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Refund,
    RefundLine,
)

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
SALE_KINDS = [
    TxnKind.PAYMENT_CAPTURED,
    TxnKind.REFUND,
    TxnKind.DISPUTE_OPENED,
    TxnKind.DISPUTE_WON,
    TxnKind.DISPUTE_LOST,
]
SELLER_KINDS = [Kind.PENDING, Kind.AVAILABLE, Kind.DISPUTED]


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


def _sums(queryset: QuerySet[Any], key: str, value: str = "amount_minor") -> dict[int, int]:
    """``Sum(value)`` per value of ``key``."""
    rows = queryset.values_list(key).annotate(total=Sum(value)).order_by()
    return {int(k): int(total) for k, total in rows if k is not None}


def ledger_check() -> LedgerReport:
    report = LedgerReport(
        transactions=LedgerTransaction.objects.count(),
        entries=LedgerEntry.objects.count(),
        accounts=LedgerAccount.objects.count(),
    )
    _check_transactions(report.problems)
    _check_orders(report)
    _check_refunds(report.problems)
    return report


def _check_transactions(problems: list[str]) -> None:
    for key in LedgerTransaction.objects.filter(entries__isnull=True).values_list(
        "idempotency_key", flat=True
    ):
        problems.append(f"Transaction {key} has no entries.")
    unbalanced = (
        LedgerEntry.objects.values_list("transaction__idempotency_key", "currency")
        .annotate(total=Sum("amount_minor"))
        .exclude(total=0)
        .order_by()
    )
    for key, currency, total in unbalanced:
        problems.append(f"Transaction {key} does not balance in {currency}: {total:+d}.")
    for entry_id, copied, kind in LedgerEntry.objects.exclude(
        transaction_kind=F("transaction__kind")
    ).values_list("pk", "transaction_kind", "transaction__kind"):
        problems.append(f"Entry #{entry_id} says {copied} but its transaction is a {kind}.")
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


def _check_orders(report: LedgerReport) -> None:
    problems = report.problems
    captured = {
        int(order_id): int(total)
        for order_id, total in LedgerEntry.objects.filter(
            account__kind=Kind.PROCESSOR, transaction__kind=TxnKind.PAYMENT_CAPTURED
        )
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    }
    sale_entries = LedgerEntry.objects.filter(transaction__kind__in=SALE_KINDS)
    held_commission = _sums(sale_entries.filter(account__kind=Kind.COMMISSION), "order_line_id")
    held_share = _sums(sale_entries.filter(account__kind__in=SELLER_KINDS), "order_line_id")
    succeeded = RefundLine.objects.filter(refund__status=Refund.Status.SUCCEEDED)
    refunded_commission = _sums(succeeded, "order_line_id", "commission_amount_minor")
    refunded_share = _sums(succeeded, "order_line_id", "seller_amount_minor")
    lost = DisputeLine.objects.filter(dispute__status=Dispute.Status.LOST)
    lost_commission = _sums(lost, "order_line_id", "commission_amount_minor")
    lost_share = _sums(lost, "order_line_id", "seller_amount_minor")

    for order_id, total, paid_at in Order.objects.values_list(
        "pk", "total_minor", "paid_at"
    ).iterator():
        if paid_at is None:
            if order_id in captured:
                problems.append(f"Order #{order_id} is not paid but a payment was posted.")
            continue
        report.orders += 1
        if captured.get(order_id, 0) != total:
            got = captured.get(order_id, 0)
            problems.append(f"Order #{order_id}: total {total}, captured in the ledger {got}.")

    paid_lines = OrderLine.objects.filter(order__paid_at__isnull=False).values_list(
        "pk", "order_id", "commission_minor", "seller_share_minor"
    )
    for line_id, order_id, commission, share in paid_lines.iterator():
        expected = (
            commission - refunded_commission.get(line_id, 0) - lost_commission.get(line_id, 0),
            share - refunded_share.get(line_id, 0) - lost_share.get(line_id, 0),
        )
        held = (-held_commission.get(line_id, 0), -held_share.get(line_id, 0))
        if held != expected:
            problems.append(
                f"Order #{order_id}, line #{line_id}: the ledger holds commission {held[0]} "
                f"and seller share {held[1]}; expected {expected[0]} and {expected[1]}."
            )


def _check_refunds(problems: list[str]) -> None:
    posted = {
        int(refund_id): -int(total)
        for refund_id, total in LedgerEntry.objects.filter(
            account__kind=Kind.PROCESSOR, transaction__kind=TxnKind.REFUND
        )
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    }
    for refund_id, status, amount in Refund.objects.values_list(
        "pk", "status", "amount_minor"
    ).iterator():
        in_ledger = posted.pop(refund_id, None)
        if status == Refund.Status.SUCCEEDED and in_ledger != amount:
            problems.append(
                f"Refund #{refund_id} succeeded for {amount}; "
                f"the ledger refunded {in_ledger if in_ledger is not None else 'nothing'}."
            )
        if status != Refund.Status.SUCCEEDED and in_ledger is not None:
            problems.append(f"Refund #{refund_id} is {status} but the ledger refunded {in_ledger}.")
    for refund_id in posted:
        problems.append(f"The ledger refunded refund #{refund_id}, which does not exist.")

    reserved = RefundLine.objects.exclude(refund__status=Refund.Status.FAILED)
    by_line = {
        line_id: (amount, share, commission)
        for line_id, amount, share, commission in reserved.values_list("order_line_id")
        .annotate(Sum("amount_minor"), Sum("seller_amount_minor"), Sum("commission_amount_minor"))
        .order_by()
    }
    lines = OrderLine.objects.filter(
        Q(refunded_minor__gt=0) | Q(pk__in=reserved.values("order_line_id"))
    ).values_list("pk", "refunded_minor", "refunded_seller_minor", "refunded_commission_minor")
    for line_id, *counters in lines.iterator():
        if tuple(counters) != by_line.get(line_id, (0, 0, 0)):
            problems.append(
                f"Line #{line_id}: refund counters {tuple(counters)} "
                f"but its refunds that did not fail add up to {by_line.get(line_id, (0, 0, 0))}."
            )
    for model, label in ((SellerOrder, "Seller order"), (Order, "Order")):
        mismatched = model.objects.annotate(
            from_lines=Coalesce(Sum("lines__refunded_minor"), 0)
        ).exclude(refunded_minor=F("from_lines"))
        for row in mismatched.values_list("pk", "refunded_minor", "from_lines"):
            problems.append(f"{label} #{row[0]}: refunded {row[1]}, its lines say {row[2]}.")
