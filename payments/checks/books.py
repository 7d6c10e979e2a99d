"""The ledger's own books: balanced transactions, running balances, and every
captured order, line and refund as the ledger holds it (checks 1 to 8 of
docs/money.md section 7). Check 4's total includes the order's service fee (of
no line; the processor received it with the lines); check 6's order counter is
the lines' refunds plus the service fee's parts, whose books are check 18
(``sales.check_service_fees``, run with check 6)."""

from __future__ import annotations

from django.db import connection
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from marketplace.models import Order, OrderLine, SellerOrder
from payments.checks.report import LedgerReport, sums
from payments.checks.sales import check_service_fees
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
    TxnKind.REFUND_REVERSED,
    TxnKind.DISPUTE_OPENED,
    TxnKind.DISPUTE_WON,
    TxnKind.DISPUTE_LOST,
]
SELLER_KINDS = [Kind.PENDING, Kind.AVAILABLE, Kind.DISPUTED]


def check_transactions(problems: list[str]) -> None:
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
    check_balances(problems)


# Each account's stored balance, shards and entries, summed per account in one pass
# over each table (hash joins: no query per account, and no JIT on small ledgers).
_DRIFTED_SQL = """
    SELECT a.id, a.seller_id, a.balance_minor, s.total, s.shards, COALESCE(e.total, 0)
    FROM payments_ledgeraccount a
    LEFT JOIN (
        SELECT account_id, SUM(balance_minor) AS total, COUNT(*) AS shards
        FROM payments_ledgerbalanceshard GROUP BY account_id
    ) s ON s.account_id = a.id
    LEFT JOIN (
        SELECT account_id, SUM(amount_minor) AS total
        FROM payments_ledgerentry GROUP BY account_id
    ) e ON e.account_id = a.id
    WHERE a.balance_minor + COALESCE(s.total, 0) <> COALESCE(e.total, 0)
       OR (a.seller_id IS NOT NULL AND s.shards IS NOT NULL)
    ORDER BY a.id
"""


def check_balances(problems: list[str]) -> None:
    """Every seller account's running balance equals the sum of its entries, and it
    has no balance shards; every platform account's shards sum to its entries (its
    own ``balance_minor`` is 0, which a constraint keeps). With every transaction
    balanced per currency (above), the balances then sum to zero per currency too."""
    with connection.cursor() as cursor:
        cursor.execute(_DRIFTED_SQL)
        drifted = cursor.fetchall()
    names = LedgerAccount.objects.select_related("seller").in_bulk([row[0] for row in drifted])
    for pk, seller_id, balance, shards_total, shards, entries_total in drifted:
        account = names[pk]
        if seller_id is None:
            problems.append(
                f"{account}: its balance shards sum to {int(shards_total or 0) + balance} "
                f"but its entries sum to {entries_total}."
            )
        elif shards:
            problems.append(f"{account}: a seller account has balance shards.")
        else:
            problems.append(
                f"{account}: running balance {balance} but its entries sum to {entries_total}."
            )


def check_orders(report: LedgerReport) -> None:
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
    held_commission = sums(sale_entries.filter(account__kind=Kind.COMMISSION), "order_line_id")
    held_share = sums(sale_entries.filter(account__kind__in=SELLER_KINDS), "order_line_id")
    succeeded = RefundLine.objects.filter(refund__status=Refund.Status.SUCCEEDED)
    refunded_commission = sums(succeeded, "order_line_id", "commission_amount_minor")
    refunded_share = sums(succeeded, "order_line_id", "seller_amount_minor")
    # A lost dispute takes what it still held: less what a refund resolved against it
    # took of the hold (docs/money.md, "Disputes and refunds").
    lost = DisputeLine.objects.filter(dispute__status=Dispute.Status.LOST).annotate(
        lost_commission=F("commission_amount_minor") - F("refunded_commission_minor"),
        lost_share=F("seller_amount_minor") - F("refunded_seller_minor"),
    )
    lost_commission = sums(lost, "order_line_id", "lost_commission")
    lost_share = sums(lost, "order_line_id", "lost_share")

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


def check_refunds(problems: list[str]) -> None:
    # What each refund took from the processor account, net of its reversal (a refund
    # reported failed after it succeeded gives everything back).
    posted = {
        int(refund_id): -int(total)
        for refund_id, total in LedgerEntry.objects.filter(
            account__kind=Kind.PROCESSOR,
            transaction__kind__in=(TxnKind.REFUND, TxnKind.REFUND_REVERSED),
        )
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
        if total
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
    mismatched_parts = SellerOrder.objects.annotate(
        from_lines=Coalesce(Sum("lines__refunded_minor"), 0)
    ).exclude(refunded_minor=F("from_lines"))
    for row in mismatched_parts.values_list("pk", "refunded_minor", "from_lines"):
        problems.append(f"Seller order #{row[0]}: refunded {row[1]}, its lines say {row[2]}.")
    # An order's refunded amount is its lines' plus the service fee's part given back.
    mismatched = Order.objects.annotate(
        from_lines=Coalesce(Sum("lines__refunded_minor"), 0)
    ).exclude(refunded_minor=F("from_lines") + F("service_fee_refunded_minor"))
    for row in mismatched.values_list("pk", "refunded_minor", "from_lines"):
        problems.append(f"Order #{row[0]}: refunded {row[1]}, its lines say {row[2]}.")
    # The service fee's own books (check 18) go with the refunds' counters.

    check_service_fees(problems)
