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

from marketplace.task_queue import enqueue_on_commit
from payments.ledger import Posting, ledger_post
from payments.locks import payout_lock, sellers_money_lock
from payments.models import (
    Clawback,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutStep,
)
from payments.payout_settlement import payout_accounts
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, TemporaryProcessorError

logger = logging.getLogger(__name__)
Kind = LedgerAccount.Kind
Status = Clawback.Status
TRANSFERRED = (Payout.Status.TRANSFERRED, Payout.Status.IN_TRANSIT, Payout.Status.PAID)


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
    from payments.tasks import clawback_task

    enqueue_on_commit(clawback_task, clawback_id)


def clawback_execute(*, clawback_id: int) -> Clawback:
    """Reverse what can be taken back for this clawback (see the module docstring).
    Safe to repeat and to run from several workers: the amount is claimed under the
    payout's lock, and a repeated call looks up what an earlier one did."""
    clawback, lookup = _claim(clawback_id)
    if clawback.status != Status.IN_FLIGHT:
        return clawback
    payout = clawback.payout
    account = payout.seller.payout_account_id
    processor = get_processor(payout.processor)
    metadata = {"clawback_id": str(clawback.pk)}
    try:
        found = (
            processor.transfer_reversal_find(
                transfer_id=payout.processor_transfer_id, metadata=metadata
            )
            if lookup
            else None
        )
        if found is None and not (lookup and _too_old(clawback)):
            held = processor.account_balance(account_id=account, currency=payout.currency)
            take = min(clawback.amount_minor, held)
            if take <= 0:
                return _finish(clawback, Status.NOTHING_HELD, 0, note="Nothing left there")
            reversal = processor.transfer_reverse(
                transfer_id=payout.processor_transfer_id,
                amount_minor=take,
                metadata=metadata,
                idempotency_key=clawback.idempotency_key,
            )
        elif found is None:  # an answer lost longer ago than its key is kept
            return _finish(clawback, Status.FAILED, 0, note="No answer from the processor")
        else:
            reversal = found
    except InvalidProcessorRequest as exc:
        return _finish(clawback, Status.FAILED, 0, note=f"Refused: {exc.message}")
    except TemporaryProcessorError:
        raise  # the task retries; the next attempt looks up first
    return _finish(clawback, Status.REVERSED, reversal.amount_minor, reversal_id=reversal.id)


def _too_old(clawback: Clawback) -> bool:
    """Past the time the processor keeps its idempotency key: look up, never send."""
    window = timedelta(hours=settings.PAYMENTS_PAYOUT_ATTENTION_HOURS)
    return clawback.created_at < timezone.now() - window


def _claim(clawback_id: int) -> tuple[Clawback, bool]:
    """Decide how much to take back, under the payout's and the seller's locks, and
    reserve it on the payout. Returns the clawback and whether an earlier attempt may
    have called the processor (look up first)."""
    now = timezone.now()
    with transaction.atomic():
        found = Clawback.objects.select_related("payout").get(pk=clawback_id)
        payout = payout_lock(found.payout_id)
        sellers_money_lock([payout.seller_id])
        clawback = Clawback.objects.select_for_update().get(pk=clawback_id)
        clawback.payout = payout
        if clawback.status == Status.IN_FLIGHT:
            lease = timedelta(seconds=settings.PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS)
            # Another worker's call, or one a killed worker left: the key is the same, so
            # the processor answers a repeat with the first reversal; look it up first.
            return clawback, clawback.created_at < now - lease
        if clawback.status != Status.PENDING:
            return clawback, False
        amount = min(clawback.wanted_minor, _seller_debt(payout), _held_there(payout))
        if amount <= 0:
            clawback.status, clawback.finished_at = Status.NOTHING_HELD, now
            clawback.note = "Nothing of it left in the seller's processor account, or no debt"
            clawback.save(update_fields=["status", "finished_at", "note"])
            return clawback, False
        Payout.objects.filter(pk=payout.pk).update(
            clawed_back_minor=payout.clawed_back_minor + amount
        )
        clawback.status, clawback.amount_minor = Status.IN_FLIGHT, amount
        clawback.save(update_fields=["status", "amount_minor"])
        return clawback, False


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
    busy = payout.steps.filter(
        kind=PayoutStep.Kind.BANK_PAYOUT, outcome=PayoutStep.Outcome.IN_FLIGHT
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
