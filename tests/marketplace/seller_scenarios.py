"""Seller histories built through the services, for the seller pages' tests, and an
independent reading of the ledger to check those pages against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import time_machine

from marketplace.models import Order
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import LedgerEntry, Payout
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

# A Monday, 03:00: before the 06:00 payout run, so each sale's hold ends before a run.
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
PAYOUT_RUN = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # the first sale's hold ended on the 9th
SECOND_SALE = datetime(2026, 3, 11, 3, 0, tzinfo=UTC)  # its hold ends on the 18th at 03:00
REFUND = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)


@dataclass
class RefundAfterPayout:
    """A $35.00 sale (share $31.50 at 10 %) paid out in a payout, a $67.50 sale (share
    $60.75) still in its hold, then the first sale refunded in full: the seller owes
    $31.50 and has $60.75 pending."""

    first: Order
    second: Order
    payout: Payout


def refund_after_payout(run, seller) -> RefundAfterPayout:
    CommissionRuleFactory(percentage_bps=1000, active_from=T0 - timedelta(days=1))
    enable_payouts(seller)
    with time_machine.travel(T0, tick=False):
        first = paid_order([(seller, 3500, 1)])
    with time_machine.travel(PAYOUT_RUN, tick=False):
        run(run_payouts)
    with time_machine.travel(SECOND_SALE, tick=False):
        second = paid_order([(seller, 6750, 1)])
    with time_machine.travel(REFUND, tick=False):
        run(refund_mark_succeeded, refund=refund_create(order=first, amount_minor=3500))
    payout = Payout.objects.get(seller=seller)
    assert payout.status == Payout.Status.PAID and payout.amount_minor == 3150
    return RefundAfterPayout(first, second, payout)


PAYOUT_KINDS = {"payout_sent", "payout_transferred", "payout_paid", "payout_failed",
                "payout_returned"}  # fmt: skip


def ledger_rows(seller, currency="USD"):
    """The seller's ledger read independently of the page: one row per transaction, a
    payout's transactions in one row listed at its first, oldest first, each with the
    pending and available balances (seller's side) once it and every older row count."""
    groups: dict[tuple[str, int], dict] = {}
    entries = (
        LedgerEntry.objects.filter(account__seller=seller, account__currency=currency)
        .select_related("account", "transaction")
        .order_by("transaction__created_at", "transaction_id", "pk")
    )
    for entry in entries:
        txn = entry.transaction
        key = (
            ("payout", int(txn.reference_id))
            if txn.reference_type == "payout" and txn.kind in PAYOUT_KINDS
            else ("txn", txn.pk)
        )
        group = groups.setdefault(
            key, {"at": (txn.created_at, txn.pk), "pending": 0, "available": 0}
        )
        group["at"] = min(group["at"], (txn.created_at, txn.pk))
        if entry.account.kind in ("pending", "available"):
            group[entry.account.kind] -= entry.amount_minor
    rows, pending, available = [], 0, 0
    for key, group in sorted(groups.items(), key=lambda item: item[1]["at"]):
        pending += group["pending"]
        available += group["available"]
        rows.append((key, pending, available))
    return rows


def page_rows(response):
    """The Transactions page's rows as (key, pending after, available after)."""
    return [
        (
            ("payout", row.payout_id) if row.payout_id else ("txn", row.transactions[0].pk),
            row.pending_after,
            row.available_after,
        )
        for row, _ in response.context["rows"]
    ]
