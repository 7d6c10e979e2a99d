"""Reconciliation: our ledger's cash at the processor against the processor's balance
transactions for a period, item by item.

Each movement is keyed by the processor object it is about, on both sides
(our ledger's processor account, then the processor's balance transaction):

- a payment: ``payment:<order>`` (+total), by the order's payment id; a
  ``charge`` (+amount), by its payment;
- its fee: ``fee:<order>`` (−fee); the charge's ``fee``;
- a refund: ``refund:<id>`` (−amount), by the refund's processor id; a ``refund``;
- a dispute: ``dispute:<id>:opened`` (−) and ``:won`` (+), by the dispute's id;
  an ``adjustment`` on the dispute (− and +);
- a payout: ``payout:<id>:transferred`` (−amount), by its transfer id; a
  ``transfer`` to the seller's connected account (its bank payout is made on the
  connected account and never moves the platform's balance);
- a clawback: ``clawback:<id>`` (+amount), by its reversal id; a
  ``transfer_refund`` (a transfer reversal) back from the connected account.

Every key whose amounts differ, or that only one side has, is a difference,
with what we know about why (a transfer whose answer is not recorded yet).
Balance transactions outside our ledger's scope (the platform's own bank
payouts, and such) are listed apart. Manual payouts are paid from the
platform's bank and never appear at the processor.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from payments.models import (
    Clawback,
    Dispute,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PaymentAttempt,
    Payout,
    ReconciliationRun,
    Refund,
)
from payments.processors import get_processor
from payments.processors.base import BalanceTransaction

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Key = tuple[str, str, str]  # (movement, processor object id, currency)
OUTSIDE_SCOPE = {"payout", "payout_cancel", "payout_failure", "stripe_fee", "tax", "topup"}


@dataclass(frozen=True)
class Difference:
    movement: str
    processor_id: str
    currency: str
    ours: int | None
    theirs: int | None
    note: str

    @property
    def amount(self) -> int:
        return (self.theirs or 0) - (self.ours or 0)


@dataclass
class Reconciliation:
    since: datetime
    until: datetime
    matched: int = 0
    ours_total: dict[str, int] = field(default_factory=dict)
    theirs_total: dict[str, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    outside_scope: list[BalanceTransaction] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _ours(since: datetime, until: datetime) -> dict[Key, int]:
    """Our processor-account movements in the period, keyed by processor object."""
    entries = (
        LedgerEntry.objects.filter(
            account__seller__isnull=True,
            account__kind=Kind.PROCESSOR,
            created_at__gte=since,
            created_at__lt=until,
        )
        .select_related("transaction")
        .order_by("pk")
    )
    by_reference: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_reference[entry.transaction.reference_type, entry.transaction.reference_id].append(entry)
    ids = {
        kind: [int(r) for t, r in by_reference if t == kind and r.isdigit()]
        for kind in ("order", "refund", "dispute", "payout", "clawback")
    }
    payments = dict(
        PaymentAttempt.objects.filter(order_id__in=ids["order"], status="succeeded").values_list(
            "order_id", "processor_payment_id"
        )
    )
    refunds = dict(
        Refund.objects.filter(pk__in=ids["refund"]).values_list("pk", "processor_refund_id")
    )
    disputes = dict(
        Dispute.objects.filter(pk__in=ids["dispute"]).values_list("pk", "processor_dispute_id")
    )
    transfers = dict(
        Payout.objects.filter(pk__in=ids["payout"]).values_list("pk", "processor_transfer_id")
    )
    reversals = dict(
        Clawback.objects.filter(pk__in=ids["clawback"]).values_list("pk", "processor_reversal_id")
    )
    ours: dict[Key, int] = defaultdict(int)
    for (reference_type, reference_id), group in by_reference.items():
        pk = int(reference_id) if reference_id.isdigit() else -1
        for entry in group:
            kind, currency, amount = entry.transaction.kind, entry.currency, entry.amount_minor
            if kind == TxnKind.PAYMENT_CAPTURED:
                key: Key = ("charge", payments.get(pk, f"order {pk}"), currency)
            elif kind == TxnKind.PROCESSOR_FEE:
                key = ("fee", payments.get(pk, f"order {pk}"), currency)
            elif kind == TxnKind.REFUND:
                key = ("refund", refunds.get(pk) or f"refund {pk}", currency)
            elif kind in (TxnKind.DISPUTE_OPENED, TxnKind.DISPUTE_WON):
                movement = "dispute" if kind == TxnKind.DISPUTE_OPENED else "dispute_won"
                key = (movement, disputes.get(pk) or f"dispute {pk}", currency)
            elif kind in (TxnKind.PAYOUT_TRANSFERRED, TxnKind.PAYOUT_PAID):
                # (A payout paid before transfers were recorded moved cash when paid.)
                key = ("transfer", transfers.get(pk) or f"payout {pk}", currency)
            elif kind == TxnKind.TRANSFER_REVERSED:
                key = ("transfer_refund", reversals.get(pk) or f"clawback {pk}", currency)
            else:
                key = (str(kind), f"{reference_type} {reference_id}", currency)
            ours[key] += amount
    return ours


def _theirs(transactions: list[BalanceTransaction], report: Reconciliation) -> dict[Key, int]:
    theirs: dict[Key, int] = defaultdict(int)
    for txn in transactions:
        if txn.type in ("charge", "payment"):
            payment = txn.payment_intent or txn.source
            theirs["charge", payment, txn.currency] += txn.amount_minor
            if txn.fee_minor:
                theirs["fee", payment, txn.currency] += -txn.fee_minor
        elif txn.type in ("refund", "payment_refund"):
            theirs["refund", txn.source, txn.currency] += txn.amount_minor
        elif txn.type == "transfer":
            theirs["transfer", txn.source, txn.currency] += txn.amount_minor
        elif txn.type == "adjustment" and txn.source.startswith(("dp_", "du_")):
            movement = "dispute" if txn.amount_minor < 0 else "dispute_won"
            theirs[movement, txn.source, txn.currency] += txn.amount_minor
            if txn.fee_minor:  # the processor's dispute fee: not in our ledger yet
                theirs["dispute_fee", txn.source, txn.currency] += -txn.fee_minor
        elif txn.type in OUTSIDE_SCOPE:
            report.outside_scope.append(txn)
        else:
            theirs[txn.type, txn.source, txn.currency] += txn.amount_minor
    return theirs


def _why(movement: str, processor_id: str, ours: int | None, theirs: int | None) -> str:
    if movement == "transfer" and ours is None:
        payout = Payout.objects.filter(processor_transfer_id=processor_id).first()
        if payout is None and theirs is not None:
            # Its answer lost (a timeout, a killed worker): a payout still sending.
            payout = Payout.objects.filter(
                status=Payout.Status.SENDING, amount_minor=-theirs
            ).first()
        if payout is None:
            return "A transfer we have no payout for."
        if payout.status == Payout.Status.SENDING:
            return (
                f"Payout #{payout.pk}'s transfer is not recorded yet: the sender looks it up "
                "on its next attempt."
            )
        return f"Payout #{payout.pk} was transferred outside this period."
    if ours is None:
        return "At the processor, not in our ledger for this period."
    if theirs is None:
        return "In our ledger, not at the processor for this period."
    return "The amounts differ."


def reconcile(*, since: datetime, until: datetime) -> Reconciliation:
    """Compare the period's ledger with the processor's balance transactions."""
    report = Reconciliation(since=since, until=until)
    transactions = list(get_processor().balance_transactions_list(since=since, until=until))
    ours, theirs = _ours(since, until), _theirs(transactions, report)
    for (_, _, currency), amount in ours.items():
        report.ours_total[currency] = report.ours_total.get(currency, 0) + amount
    for (_, _, currency), amount in theirs.items():
        report.theirs_total[currency] = report.theirs_total.get(currency, 0) + amount
    for key in sorted(set(ours) | set(theirs)):
        mine, its = ours.get(key), theirs.get(key)
        if mine is not None and mine == its:
            report.matched += 1
            continue
        movement, processor_id, currency = key
        report.differences.append(
            Difference(
                movement, processor_id, currency, mine, its, _why(movement, processor_id, mine, its)
            )
        )
    return report


# How many differences a stored run keeps for people to read (all are counted).
KEPT_DIFFERENCES = 50


def reconciliation_record(*, since: datetime, until: datetime, via: str) -> Reconciliation:
    """Reconcile the period and keep the result (``ReconciliationRun``), so the console
    shows how the last reconciliation went without asking the processor again."""

    report = reconcile(since=since, until=until)
    ReconciliationRun.objects.create(
        since=since,
        until=until,
        via=via,
        matched=report.matched,
        difference_count=len(report.differences),
        differences=[
            {
                "movement": d.movement,
                "processor_id": d.processor_id,
                "currency": d.currency,
                "ours": d.ours,
                "theirs": d.theirs,
                "note": d.note,
            }
            for d in report.differences[:KEPT_DIFFERENCES]
        ],
    )
    return report
