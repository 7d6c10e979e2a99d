"""A sent payout's answers from the processor: transferred, paid, failed, returned.

Every change is a ledger transaction with a key of its own, so an answer that
arrives twice, late or out of order posts once (docs/money.md, "Payouts"):

- ``payout:<id>:transferred``: the transfer reached the seller's processor
  account: the platform's processor cash moves to ``connected``.
- ``payout:<id>:failed``: the transfer was refused; the money never left and is
  available again (only before a transfer).
- ``payout:<id>:bank-<n>:paid``: bank payout attempt ``n`` reached the seller's
  bank: ``connected`` and the seller's in transit are cleared.
- ``payout:<id>:bank-<n>:returned``: that bank payout failed after it was paid
  (Stripe: "a paid payout can still fail"): the money is back in the seller's
  processor account and in transit again; the next run pays it out from there.

A failed or refused bank payout leaves the payout ``transferred``: its money is in
the seller's processor account, never transferred again.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.kernel.errors import InvalidState
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.integrations.announcements import payout_announce
from payments.integrations.webhooks import EVENT_NAMES
from payments.ledger.locks import payout_lock, sellers_money_lock
from payments.ledger.posting import Posting, ledger_account, ledger_post
from payments.models import LedgerAccount, LedgerTransaction, Payout, PayoutStep

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
Step = PayoutStep.Kind
SETTLED = ("paid", "failed", "canceled")
# Our notification events as integrators' webhook events (others are not announced).
INTEGRATOR_EVENTS = {"bank_refused": "bank_failed"}


def payout_accounts(payout: Payout, *kinds: str) -> dict[str, LedgerAccount]:
    """The ledger accounts of these kinds in the payout's currency (the seller's, or the
    platform's for a platform kind), read in one query; made on first use."""
    seller_kinds = [kind for kind in kinds if kind not in LedgerAccount.PLATFORM_KINDS]
    platform_kinds = [kind for kind in kinds if kind in LedgerAccount.PLATFORM_KINDS]
    wanted = Q(pk__in=[])
    if seller_kinds:
        wanted |= Q(seller_id=payout.seller_id, kind__in=seller_kinds)
    if platform_kinds:
        wanted |= Q(seller__isnull=True, kind__in=platform_kinds)
    found = {
        account.kind: account
        for account in LedgerAccount.objects.filter(wanted, currency=payout.currency)
    }
    for kind in kinds:
        if kind in found:
            continue
        if kind in platform_kinds:
            found[kind] = ledger_account(kind=kind, currency=payout.currency)
            continue
        # The seller's first payout: made at once (the read above found none), or, made
        # meanwhile by another transaction, read.
        try:
            with transaction.atomic():
                found[kind] = LedgerAccount.objects.create(
                    seller_id=payout.seller_id, kind=kind, currency=payout.currency
                )
        except IntegrityError:
            found[kind] = LedgerAccount.objects.get(
                seller_id=payout.seller_id, kind=kind, currency=payout.currency
            )
    return found


def payout_post(
    payout: Payout,
    *,
    kind: str,
    key: str,
    debit: str,
    credit: str,
    amount: int,
    description: str,
) -> None:
    """Post one move of ``amount`` for the payout: ``debit`` gets +amount and ``credit``
    -amount (the accounts of those kinds in its currency), under ``key``, once."""
    accounts = payout_accounts(payout, debit, credit)
    ledger_post(
        kind=kind,
        idempotency_key=key,
        reference_type="payout",
        reference_id=payout.pk,
        postings=[Posting(accounts[debit], amount), Posting(accounts[credit], -amount)],
        description=description,
    )


def _payout_locked(payout: Payout) -> Payout:
    """The payout read again under its row lock, then its seller's money lock."""
    locked = payout_lock(payout.pk)
    sellers_money_lock([locked.seller_id])
    return locked


# --- Transferred, or refused ------------------------------------------------------------------


@transaction.atomic
def payout_transferred(*, payout: Payout, transfer_id: str) -> Payout:
    """The transfer reached the seller's processor account: record it, once."""
    return payout_transferred_locked(payout_lock(payout.pk), transfer_id=transfer_id)


def payout_transferred_locked(
    locked: Payout, *, transfer_id: str, also: dict[str, Any] | None = None
) -> Payout:
    """``payout_transferred`` for a payout the caller read under its row lock in the open
    transaction: takes the seller's money lock, posts, and writes the payout's changes
    with ``also`` (more fields of the caller's) in one UPDATE."""
    sellers_money_lock([locked.seller_id])
    _post_transferred(locked)
    fields = []
    if transfer_id and locked.processor_transfer_id != transfer_id:
        locked.processor_transfer_id = transfer_id
        fields.append("processor_transfer_id")
    if locked.status == Status.SENDING:
        locked.status, locked.failure_reason = Status.TRANSFERRED, ""
        fields += ["status", "failure_reason"]
    for name, value in (also or {}).items():
        setattr(locked, name, value)
        fields.append(name)
    if fields:
        locked.save(update_fields=fields)
    return locked


def _post_transferred(payout: Payout) -> None:
    payout_post(
        payout,
        kind=TxnKind.PAYOUT_TRANSFERRED,
        key=f"payout:{payout.pk}:transferred",
        debit=Kind.CONNECTED,
        credit=Kind.PROCESSOR,
        amount=payout.amount_minor,
        description=f"Payout #{payout.pk} transferred to the seller's processor account",
    )


def _was_transferred(payout: Payout) -> bool:
    return LedgerTransaction.objects.filter(
        idempotency_key=f"payout:{payout.pk}:transferred"
    ).exists()


@transaction.atomic
def payout_failed(*, payout: Payout, reason: str) -> Payout:
    """The payout did not get through. Before its transfer the money never left: it is
    available again and the next run pays it. After it, the current bank payout
    failed (or, once paid, was returned): the money waits in the seller's processor
    account for the next run's bank payout."""
    locked = _payout_locked(payout)
    if locked.status in (Status.FAILED, Status.CANCELLED):
        return locked
    if locked.status in (*Payout.OPEN, Status.SENDING) and not _was_transferred(locked):
        return _transfer_refused(locked, reason)
    step = _current_bank_step(locked)
    if step is None:
        if locked.status in (Status.SENDING, Status.TRANSFERRED):
            locked.status, locked.failure_reason = Status.TRANSFERRED, reason[:255]
            locked.save(update_fields=["status", "failure_reason"])
        return locked  # (paid without a bank payout: all of it was clawed back)
    return bank_payout_settle(payout=locked, step=step, status="failed", message=reason)


@transaction.atomic
def payout_transfer_refused(*, payout: Payout, reason: str) -> Payout:
    """The processor refused the payout's transfer: unless another attempt got it
    through meanwhile, the money never left and is available again."""
    locked = _payout_locked(payout)
    if locked.status not in (*Payout.OPEN, Status.SENDING) or _was_transferred(locked):
        return locked  # transferred by another attempt: its bank payout goes on
    return _transfer_refused(locked, reason)


def _transfer_refused(payout: Payout, reason: str) -> Payout:
    if payout.status not in (*Payout.OPEN, Status.SENDING):
        raise InvalidState(f"Payout #{payout.pk} was transferred; it cannot fail back.")
    if payout.status == Status.SENDING:
        payout_post(
            payout,
            kind=TxnKind.PAYOUT_FAILED,
            key=f"payout:{payout.pk}:failed",
            debit=Kind.IN_TRANSIT,
            credit=Kind.AVAILABLE,
            amount=payout.amount_minor,
            description=f"Payout #{payout.pk} failed",
        )
    payout.breakdown.all().delete()  # its entries are paid by the next payout
    payout.status, payout.failed_at = Status.FAILED, timezone.now()
    payout.failure_reason = reason[:255]
    payout.next_attempt_at = None
    payout.save(update_fields=["status", "failed_at", "failure_reason", "next_attempt_at"])
    payout_notify_later(payout, "failed")
    return payout


# --- Bank payouts -------------------------------------------------------------------------------


def _current_bank_step(payout: Payout) -> PayoutStep | None:
    return (
        PayoutStep.objects.select_for_update()
        .filter(payout=payout, kind=Step.BANK_PAYOUT)
        .exclude(processor_object_id="")
        .order_by("-attempt")
        .first()
    )


@transaction.atomic
def payout_paid(*, payout: Payout) -> Payout:
    """The current bank payout reached the seller's bank. Safe to repeat."""
    locked = _payout_locked(payout)
    if locked.status == Status.PAID:
        return locked
    step = _current_bank_step(locked)
    if step is None:
        raise InvalidState(f"Payout #{locked.pk} has no bank payout to be paid.")
    return bank_payout_settle(payout=locked, step=step, status="paid")


def bank_payout_settle(
    *, payout: Payout, step: PayoutStep, status: str, message: str = ""
) -> Payout:
    """Apply a bank payout's final status (paid, failed, canceled) to ``step`` of the
    payout, both read under their locks with the seller's money lock held."""
    if status not in SETTLED:
        return payout
    # Its transfer's posting, and a bank payout paid before attempts had keys: one read.
    posted = set(
        LedgerTransaction.objects.filter(
            Q(idempotency_key=f"payout:{payout.pk}:transferred")
            | Q(idempotency_key=f"payout:{payout.pk}:paid", kind=TxnKind.PAYOUT_PAID)
        ).values_list("idempotency_key", flat=True)
    )
    legacy_paid = f"payout:{payout.pk}:paid" in posted
    if f"payout:{payout.pk}:transferred" not in posted and not legacy_paid:
        # A bank payout exists, so the transfer happened; its answer was lost. (A payout
        # paid before transfers were recorded took the platform's cash when paid.)
        _post_transferred(payout)
    latest = (
        PayoutStep.objects.filter(payout=payout, kind=Step.BANK_PAYOUT)
        .exclude(processor_object_id="")
        .order_by("-attempt")
        .values_list("pk", flat=True)
        .first()
    )
    is_current = latest == step.pk
    paid_key = _paid_key(payout, step)
    if status == "paid":
        if step.object_status == "failed":
            return payout  # a late "paid" after its failure changes nothing
        payout_post(
            payout,
            kind=TxnKind.PAYOUT_PAID,
            key=paid_key,
            debit=Kind.IN_TRANSIT,
            credit=Kind.CONNECTED,
            amount=step.amount_minor,
            description=f"Payout #{payout.pk} paid to the seller's bank",
        )
        _step_status(step, "paid")
        if is_current and payout.status != Status.PAID:
            payout.status, payout.paid_at, payout.failure_reason = Status.PAID, timezone.now(), ""
            payout.next_attempt_at = payout.attempts_since = None
            payout.save(
                update_fields=[
                    "status",
                    "paid_at",
                    "failure_reason",
                    "next_attempt_at",
                    "attempts_since",
                ]
            )
            payout_notify_later(payout, "paid")
        return payout
    returned = LedgerTransaction.objects.filter(idempotency_key=paid_key).exists()
    if step.object_status == "failed":
        return payout  # told already
    reason = message or f"The processor reported the bank payout {status}."
    if returned:
        payout_post(
            payout,
            kind=TxnKind.PAYOUT_RETURNED,
            key=paid_key.replace(":paid", ":returned"),
            debit=Kind.CONNECTED,
            credit=Kind.IN_TRANSIT,
            amount=step.amount_minor,
            description=f"Payout #{payout.pk} returned by the seller's bank",
        )
    _step_status(step, "failed", message=reason)
    if is_current and payout.status in (
        Status.SENDING,
        Status.TRANSFERRED,
        Status.IN_TRANSIT,
        Status.PAID,
    ):
        payout.status = Status.TRANSFERRED
        payout.failure_reason = (
            f"{'Returned by the bank' if returned else 'Bank payout failed'}: {reason}"
        )[:255]
        payout.next_attempt_at = payout.attempts_since = None  # the next run pays it out
        payout.save(update_fields=["status", "failure_reason", "next_attempt_at", "attempts_since"])
        payout_notify_later(payout, "returned" if returned else "bank_failed")
    return payout


def _paid_key(payout: Payout, step: PayoutStep) -> str:
    if step.idempotency_key == f"{payout.idempotency_key}-payout":
        return f"payout:{payout.pk}:paid"  # made before bank payouts had attempts
    return f"payout:{payout.pk}:bank-{step.attempt}:paid"


def _step_status(step: PayoutStep, status: str, *, message: str = "") -> None:
    step.object_status = status
    fields = ["object_status"]
    if step.outcome in (PayoutStep.Outcome.ERROR, PayoutStep.Outcome.IN_FLIGHT):
        # Its answer was lost, but its event says what it made: nothing to look up.
        step.outcome, step.finished_at = PayoutStep.Outcome.SUCCEEDED, timezone.now()
        fields += ["outcome", "finished_at"]
    if message:
        step.message = message[:255]
        fields.append("message")
    step.save(update_fields=fields)


@transaction.atomic(savepoint=False)  # all or nothing with its caller's transaction
def payout_sync(
    *,
    processor_name: str,
    processor_payout_id: str,
    status: str,
    metadata: dict[str, str],
    message: str = "",
    arrival_on: date | None = None,
) -> None:
    """Apply a ``payout.paid``, ``payout.failed`` or ``payout.canceled`` event to the bank
    payout attempt it is about: the one with that processor id, else (its answer not
    recorded yet) the one its metadata names. A paid event's arrival date is the
    payout's, if the event is about its current bank payout."""
    if status not in SETTLED:
        return
    step = _step_for(processor_name, processor_payout_id, metadata)
    if step is None:
        return
    payout = _payout_locked(step.payout)
    step = PayoutStep.objects.select_for_update().get(pk=step.pk)
    if processor_payout_id and not step.processor_object_id:
        step.processor_object_id = processor_payout_id
        step.save(update_fields=["processor_object_id"])
    if payout.status == Status.SENDING:
        payout_transferred(payout=payout, transfer_id="")
        payout.refresh_from_db()
    bank_payout_settle(payout=payout, step=step, status=status, message=message)
    if (
        arrival_on is not None
        and status == "paid"
        and step.processor_object_id
        and step.processor_object_id == payout.processor_payout_id  # read under the lock
        and payout.arrival_on != arrival_on  # (told already when the bank payout was made)
    ):
        Payout.objects.filter(pk=payout.pk).update(arrival_on=arrival_on)


def _step_for(
    processor_name: str, processor_payout_id: str, metadata: dict[str, str]
) -> PayoutStep | None:
    steps = PayoutStep.objects.select_related("payout").filter(
        kind=Step.BANK_PAYOUT, payout__processor=processor_name
    )
    if processor_payout_id:
        found = steps.filter(processor_object_id=processor_payout_id).first()
        if found is not None:
            return found
    named, attempt = metadata.get("payout_id", ""), metadata.get("attempt", "")
    if named.isdigit() and attempt.isdigit():
        return steps.filter(payout_id=int(named), attempt=int(attempt)).first()
    # A bank payout made before attempts were recorded: give it its step now.
    legacy = (
        Q(processor=processor_name, processor_payout_id=processor_payout_id)
        if processor_payout_id
        else Q(pk__in=[])
    )
    if named.isdigit():
        legacy |= Q(pk=int(named), processor=processor_name)
    payout = Payout.objects.filter(legacy).order_by("pk").first()
    if payout is None or payout.steps.filter(kind=Step.BANK_PAYOUT).exists():
        return None
    if not (payout.processor_payout_id or processor_payout_id):
        return None  # no bank payout was ever made for it
    step, _ = PayoutStep.objects.get_or_create(
        idempotency_key=f"{payout.idempotency_key}-payout",
        defaults={
            "payout": payout,
            "kind": Step.BANK_PAYOUT,
            "attempt": 1,
            "amount_minor": payout.bank_amount_minor,
            "outcome": PayoutStep.Outcome.SUCCEEDED,
            "processor_object_id": payout.processor_payout_id or processor_payout_id,
            "finished_at": timezone.now(),
        },
    )
    return step


def payout_notify_later(payout: Payout, event: str) -> None:
    """Email the seller (and operators, for what needs them) and tell integrators, once
    this transaction commits."""

    announced = INTEGRATOR_EVENTS.get(event, event)
    if f"payout.{announced}" in EVENT_NAMES:
        payout_announce(payout=payout, event=announced)
    enqueue_on_commit("payments.tasks.payout_notify_task", payout.pk, event)
