"""Clawbacks: a seller's part of a refund or a lost dispute taken back from a transfer.

With separate charges and transfers, Stripe never takes money back from a
connected account by itself: a refund or a lost dispute after the seller's share
was transferred leaves the platform short and the seller in debt. So:

- **When.** A refund succeeds (``refund_mark_succeeded``) or a dispute is lost
  (``dispute_closed``) for order lines whose earnings a processor payout has
  transferred. One ``Clawback`` per reason and payout is made in that same
  transaction (unique: never twice), and a task reverses it after the commit.
- **How much.** The seller's part of those lines, capped, under the payout's and
  the seller's money locks, at what the seller owes now (a clawback only repays
  a debt), at what that payout's transfer still holds in the seller's processor
  account (all of it while its bank payout waits; nothing once the bank payout
  is under way or paid) and at the connected account's available balance at the
  processor (Stripe reverses a transfer only from what the account holds). The
  amount is reserved on the payout (``clawed_back_minor``) before the processor
  is called, so its bank payout pays only the rest.
- **The rest** stays a debt in the seller's available balance, netted from the
  next payout, as before.
- **Ledger.** ``clawback:<id>`` (``transfer_reversed``): the platform's processor
  cash +R and ``connected`` −R (the money is back on the platform); the seller's
  in transit +R (that much less of the payout to pay out) and available −R (the
  debt repaid). The seller's overall position does not change: money they owed
  is taken from money on its way to them.

The reversal carries ``metadata[clawback_id]`` and one key
(``clawback-<refund|dispute>-<its id>-<payout id>``);
before a repeated attempt the transfer's reversals are looked up and a reversal
found is adopted, so a lost answer never reverses twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.kernel.task_queue import enqueue_on_commit
from payments.ledger.locks import payout_lock, sellers_money_lock
from payments.ledger.posting import Posting, ledger_post
from payments.models import (
    Clawback,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutStep,
)
from payments.payouts.settlement import payout_accounts
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, TemporaryProcessorError

logger = logging.getLogger(__name__)
Kind = LedgerAccount.Kind
Status = Clawback.Status
TRANSFERRED = (Payout.Status.TRANSFERRED, Payout.Status.IN_TRANSIT, Payout.Status.PAID)
STARTED, TAKEN_OVER = "started", "taken over"  # how a worker took a clawback up


def clawbacks_plan(*, reason_type: str, reason_id: int, seller_parts: Mapping[int, int]) -> int:
    """In the caller's transaction: a clawback per transferred payout that paid for
    these order lines (``seller_parts``: order line id to the seller's part taken from
    their available balance), each reversed by a task after the commit. Returns how
    many were made."""
    parts = {line: amount for line, amount in seller_parts.items() if amount > 0}
    if not parts:
        return 0
    paid_by = (
        PayoutEntry.objects.filter(
            entry__order_line_id__in=parts,
            entry__account__kind=Kind.AVAILABLE,
            entry__amount_minor__lt=0,  # the earnings, not a refund's debit
            payout__method=PayoutMethod.PROCESSOR,
            payout__status__in=TRANSFERRED,
        )
        .values_list("entry__order_line_id", "payout_id")
        .order_by("entry__order_line_id", "payout_id")
    )
    wanted: dict[int, int] = defaultdict(int)
    for line_id, payout_id in dict(paid_by).items():
        wanted[payout_id] += parts[line_id]
    made = 0
    for payout_id, amount in sorted(wanted.items()):
        clawback, created = Clawback.objects.get_or_create(
            reason_type=reason_type,
            reason_id=reason_id,
            payout_id=payout_id,
            defaults={
                "wanted_minor": amount,
                "idempotency_key": f"clawback-{reason_type}-{reason_id}-{payout_id}",
            },
        )
        if created:
            made += 1
            _enqueue(clawback.pk)
    return made


def _enqueue(clawback_id: int) -> None:
    enqueue_on_commit("payments.tasks.clawback_task", clawback_id)


def clawback_execute(*, clawback_id: int) -> Clawback:
    """Reverse what can be taken back for this clawback (see the module docstring).
    Safe to repeat and to run from several workers: one worker holds it at a time (a
    lease), its amount is fixed before the first call and never changes, and a worker
    taking up one left under way looks up what the earlier call did first."""
    clawback, taken_up = _claim(clawback_id)
    if taken_up is None:
        return clawback  # settled, or another worker holds it
    reentered = taken_up == TAKEN_OVER
    payout = clawback.payout
    processor = get_processor(payout.processor)
    metadata = {"clawback_id": str(clawback.pk)}
    try:
        found = (
            processor.transfer_reversal_find(
                transfer_id=payout.processor_transfer_id, metadata=metadata
            )
            if reentered
            else None
        )
        if found is not None:
            reversal = found
        elif reentered and _too_old(clawback):  # its key is forgotten: never send again
            return _finish(clawback, Status.FAILED, 0, note="No answer from the processor")
        else:
            if not reentered:
                held = processor.account_balance(
                    account_id=payout.seller.payout_account_id, currency=payout.currency
                )
                clawback = _fix_amount(clawback, held)
                if clawback.status != Status.IN_FLIGHT:
                    return clawback
            reversal = processor.transfer_reverse(
                transfer_id=payout.processor_transfer_id,
                amount_minor=clawback.amount_minor,
                metadata=metadata,
                idempotency_key=clawback.idempotency_key,
            )
    except InvalidProcessorRequest as exc:
        if exc.code == "idempotency_error":  # an earlier call's outcome is not known
            _release_lease(clawback)
            raise
        return _finish(clawback, Status.FAILED, 0, note=f"Refused: {exc.message}")
    except TemporaryProcessorError:
        _release_lease(clawback)
        raise  # the task retries; the next attempt looks up first
    return _finish(clawback, Status.REVERSED, reversal.amount_minor, reversal_id=reversal.id)


def _too_old(clawback: Clawback) -> bool:
    """Past the time the processor keeps its idempotency key: look up, never send."""
    window = timedelta(hours=settings.PAYMENTS_PAYOUT_ATTENTION_HOURS)
    return clawback.created_at < timezone.now() - window


def _claim(clawback_id: int) -> tuple[Clawback, str | None]:
    """Take the clawback up under the payout's and the seller's locks: a pending one gets
    its amount decided and reserved on the payout (``STARTED``); one under way is taken
    over once its lease is over (``TAKEN_OVER``: an earlier call may have reached the
    processor, look up first). None: nothing to do now."""
    now = timezone.now()
    lease = timedelta(seconds=settings.PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS)
    with transaction.atomic():
        found = Clawback.objects.select_related("payout").get(pk=clawback_id)
        payout = payout_lock(found.payout_id)
        sellers_money_lock([payout.seller_id])
        clawback = Clawback.objects.select_for_update().get(pk=clawback_id)
        clawback.payout = payout
        if clawback.status == Status.IN_FLIGHT:
            if clawback.claimed_at and clawback.claimed_at > now - lease:
                return clawback, None  # another worker is on it
            clawback.claimed_at = now
            clawback.save(update_fields=["claimed_at"])
            return clawback, TAKEN_OVER
        if clawback.status != Status.PENDING:
            return clawback, None
        amount = min(clawback.wanted_minor, _seller_debt(payout), _held_there(payout))
        if amount <= 0:
            clawback.status, clawback.finished_at = Status.NOTHING_HELD, now
            clawback.note = "Nothing of it left in the seller's processor account, or no debt"
            clawback.save(update_fields=["status", "finished_at", "note"])
            return clawback, None
        Payout.objects.filter(pk=payout.pk).update(
            clawed_back_minor=payout.clawed_back_minor + amount
        )
        clawback.status, clawback.amount_minor, clawback.claimed_at = (
            Status.IN_FLIGHT,
            amount,
            now,
        )
        clawback.save(update_fields=["status", "amount_minor", "claimed_at"])
        return clawback, STARTED


def _fix_amount(clawback: Clawback, held: int) -> Clawback:
    """Cap the amount at what the connected account holds, before the first call, and
    give the payout back what will not be taken."""
    take = max(min(clawback.amount_minor, held), 0)
    if take == clawback.amount_minor:
        return clawback
    if take == 0:
        return _finish(clawback, Status.NOTHING_HELD, 0, note="Nothing left there")
    with transaction.atomic():
        payout = payout_lock(clawback.payout_id)
        locked = Clawback.objects.select_for_update().get(pk=clawback.pk)
        Payout.objects.filter(pk=payout.pk).update(
            clawed_back_minor=payout.clawed_back_minor - (locked.amount_minor - take)
        )
        locked.amount_minor = take
        locked.save(update_fields=["amount_minor"])
        locked.payout = clawback.payout
        return locked


def _release_lease(clawback: Clawback) -> None:
    Clawback.objects.filter(pk=clawback.pk, status=Status.IN_FLIGHT).update(claimed_at=None)


def _seller_debt(payout: Payout) -> int:
    """What the seller owes in the payout's currency (their available balance in debt)."""
    balance = (
        LedgerAccount.objects.filter(
            seller_id=payout.seller_id, kind=Kind.AVAILABLE, currency=payout.currency
        )
        .values_list("balance_minor", flat=True)
        .first()
    )
    return max(int(balance or 0), 0)


def _held_there(payout: Payout) -> int:
    """What the payout's transfer still holds in the seller's processor account: all of
    it less earlier clawbacks while its bank payout waits, nothing once one is under way
    or paid."""
    if payout.status != Payout.Status.TRANSFERRED or not payout.processor_transfer_id:
        return 0
    # A bank payout under way, or one whose answer was lost (it may have been made).
    busy = payout.steps.filter(
        kind=PayoutStep.Kind.BANK_PAYOUT,
        outcome__in=(PayoutStep.Outcome.IN_FLIGHT, PayoutStep.Outcome.ERROR),
        object_status="",
    ).exists()
    return 0 if busy else payout.bank_amount_minor


def _finish(
    clawback: Clawback, status: str, taken: int, *, reversal_id: str = "", note: str = ""
) -> Clawback:
    """Record the outcome, post what was taken, and give back to the payout what was
    reserved and not taken."""
    with transaction.atomic():
        payout = payout_lock(clawback.payout_id)
        sellers_money_lock([payout.seller_id])
        clawback = Clawback.objects.select_for_update().get(pk=clawback.pk)
        if clawback.status != Status.IN_FLIGHT:
            return clawback
        unused = clawback.amount_minor - taken
        if unused:
            Payout.objects.filter(pk=payout.pk).update(
                clawed_back_minor=payout.clawed_back_minor - unused
            )
        if taken:
            accounts = payout_accounts(
                payout, Kind.PROCESSOR, Kind.CONNECTED, Kind.IN_TRANSIT, Kind.AVAILABLE
            )
            ledger_post(
                kind=LedgerTransaction.Kind.TRANSFER_REVERSED,
                idempotency_key=f"clawback:{clawback.pk}",
                reference_type="clawback",
                reference_id=clawback.pk,
                postings=[
                    Posting(accounts[Kind.PROCESSOR], taken),
                    Posting(accounts[Kind.CONNECTED], -taken),
                    Posting(accounts[Kind.IN_TRANSIT], taken),
                    Posting(accounts[Kind.AVAILABLE], -taken),
                ],
                description=(
                    f"Clawed back from payout #{payout.pk} for "
                    f"{clawback.reason_type} #{clawback.reason_id}"
                ),
            )
        clawback.status, clawback.amount_minor = status, taken
        clawback.processor_reversal_id = reversal_id
        clawback.note = note[:255]
        clawback.finished_at = timezone.now()
        clawback.save(
            update_fields=["status", "amount_minor", "processor_reversal_id", "note", "finished_at"]
        )
        if taken:
            logger.info("Clawback #%s took %s back from payout #%s", clawback.pk, taken, payout.pk)
        return clawback


def clawbacks_sweep(*, older_than_minutes: int = 10) -> int:
    """Run again the clawbacks a lost task or a killed worker left pending or under way."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    stuck = Clawback.objects.filter(
        status__in=(Status.PENDING, Status.IN_FLIGHT), created_at__lt=cutoff
    ).values_list("pk", flat=True)
    done = 0
    for pk in stuck:
        try:
            clawback_execute(clawback_id=pk)
        except TemporaryProcessorError:
            continue
        done += 1
    return done
