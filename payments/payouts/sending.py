"""Sending payouts through the processor: a transfer, then a bank payout, each recorded.

A processor payout moves in three recorded steps (docs/money.md, "Payouts"):

1. **Sent.** The payout is marked ``sending`` and its amount moves from the
   seller's available balance to in transit (``payout:<id>:sent``) before any
   processor call.
2. **Transferred.** A transfer from the platform's processor balance to the
   seller's connected account. Its id is recorded, with the ledger's
   ``payout:<id>:transferred`` (processor cash to ``connected``: in sellers'
   processor accounts), in its own transaction the moment the processor answers;
   the payout is ``transferred``. A refused transfer fails the payout: the money
   never left, it goes back to available (``payout:<id>:failed``) and the next run
   pays it.
3. **Bank payout.** A payout from the connected account to the seller's bank; the
   payout is ``in_transit`` until the processor's ``payout.paid`` / ``payout.failed``
   settles it (``payments/payouts/settlement.py``). A refused or failed bank payout
   leaves the money in the connected account: the payout goes back to
   ``transferred`` and a later attempt pays out from there. Nothing transfers twice.

Attempts and keys. Every processor call is a ``PayoutStep`` with its own
idempotency key (``payout-<id>-transfer-<n>``, ``payout-<id>-bank-<n>``) that is
used by one attempt only; the SDK's own network retries within that attempt
reuse it within seconds. A retry is a new attempt with a new key, so no key is
ever relied on after the processor forgets it (Stripe keeps keys 24 hours) and a
stored error answer (Stripe replays a ``balance_insufficient`` for 24 hours)
never blocks a retry. What an earlier attempt whose answer was lost may have
done is looked up first (the transfer by its ``transfer_group``, the bank payout
by its metadata) and adopted. One attempt is under way at a time: an attempt is
claimed under the payout's row lock and holds a lease
(``PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS``); a second sender meeting it does
nothing, and after the lease the attempt counts as unanswered.

Retries. Temporary errors (rate limits, timeouts, a processor balance still
settling) set ``next_attempt_at`` with exponential backoff; the task retries
then, and the sweeper sends whatever is due if the task was lost. A payout
still not through ``PAYMENTS_PAYOUT_ATTENTION_HOURS`` after it was sent stops
and waits for an operator ("needs attention", with what is known).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.ledger.audit import audit_record
from payments.ledger.locks import payout_lock, sellers_money_lock
from payments.models import (
    Clawback,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    PayoutMethod,
    PayoutStep,
)
from payments.payouts.guard import payout_frozen_reason, payout_guard
from payments.payouts.planning import send_delay
from payments.payouts.settlement import (
    SETTLED,
    bank_payout_settle,
    payout_notify_later,
    payout_post,
    payout_transfer_refused,
    payout_transferred_locked,
)
from payments.processors import get_processor
from payments.processors.base import (
    InvalidProcessorRequest,
    PaymentProcessor,
    ProcessorError,
    TemporaryProcessorError,
    Transfer,
)
from payments.processors.base import Payout as ProcessorPayout

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
Step = PayoutStep.Kind
Outcome = PayoutStep.Outcome
# Where the sender may still call the processor for a payout.
SENDABLE = (Status.SCHEDULED, Status.SENDING, Status.TRANSFERRED)

BALANCE_SHORT = "Waiting for the platform's processor balance; retried automatically"
# Refusals that are not the seller's fault and pass by themselves: retried later.
RETRY_LATER_CODES = frozenset({"balance_insufficient"})
CLAWBACK_WAIT_SECONDS = 60
FIRST_RETRY_SECONDS = 60
KEY_NAMES: dict[str, str] = {Step.TRANSFER: "transfer", Step.BANK_PAYOUT: "bank"}
LONGEST_RETRY_SECONDS = 3600


class Claim(NamedTuple):
    """An attempt claimed under the payout's row lock (``step`` None: not now), and
    whether an earlier attempt's outcome is unknown (to be looked up first)."""

    step: PayoutStep | None
    unknown: bool = False


NOT_NOW = Claim(None)


def payout_send(*, payout: Payout) -> Payout:
    """Take the payout as far as it can go now: transfer it, then pay it out to the
    seller's bank (see the module docstring). Safe to call at any time, from any
    number of workers. Only ``payout.pk`` is used: the payout is read under its lock.

    The transfer's attempt is claimed in a transaction of its own, after the one that
    marked the payout sent, so a freeze that committed in between stops it; the bank
    payout's is claimed under the payout's row lock in the transaction that recorded
    the transfer (its freeze check runs there, under the seller's money lock)."""
    payout, claim = _start(payout)
    if payout.status == Status.SENDING and _may_call(payout):
        payout, claim = _transfer_step(payout, claim)
    if payout.status == Status.TRANSFERRED and _may_call(payout):
        payout = _bank_payout_step(payout, claim)
    return payout


def payout_resume(*, payout: Payout, by: User, reason: str, via: str = "code") -> Payout:
    """Operators: send again a payout that stopped for them ("needs attention"), after
    checking the processor's dashboard; recorded with who and why. Its next attempt
    looks up what earlier ones did first, and its attention window starts again."""
    if not reason.strip():
        raise InvalidRequest("Say why the payout can be sent again.")
    with transaction.atomic():
        locked = payout_lock(payout.pk)
        if locked.status not in (Status.SENDING, Status.TRANSFERRED) or not locked.attention_reason:
            raise InvalidState(f"Payout #{locked.pk} is not waiting for an operator.")
        Payout.objects.filter(pk=locked.pk).update(
            attention_reason="", next_attempt_at=None, attempts_since=None
        )
        audit_record(target=locked, action="resume", by=by, reason=reason, via=via)
    return payout_send(payout=locked)


def _start(payout: Payout) -> tuple[Payout, Claim | None]:
    """Mark a scheduled payout sent (money to in transit), once; read it again
    otherwise. Claims nothing (the claim is None)."""
    with transaction.atomic():
        payout = payout_lock(payout.pk)
        if payout.method != PayoutMethod.PROCESSOR or payout.status != Status.SCHEDULED:
            return payout, None
        if payout_guard(payout) is not None:
            return payout, None  # held or cancelled, with the reason on it
        payout_post(
            payout,
            kind=TxnKind.PAYOUT_SENT,
            key=f"payout:{payout.pk}:sent",
            debit=Kind.AVAILABLE,
            credit=Kind.IN_TRANSIT,
            amount=payout.amount_minor,
            description=f"Payout #{payout.pk} sent",
        )
        payout.status, payout.sent_at = Status.SENDING, timezone.now()
        payout.processor = get_processor().name
        payout.save(update_fields=["status", "sent_at", "processor"])
        # The transfer is claimed in a transaction of its own (``_transfer_step``), whose
        # freeze check sees a freeze that committed while this one held the payout's
        # lock: such a freeze found the payout sending and held nothing.
        return payout, None


def _may_call(payout: Payout) -> bool:
    return payout.method == PayoutMethod.PROCESSOR and not payout.attention_reason


# --- Claiming an attempt ---------------------------------------------------------------------


def _claim(payout: Payout, kind: str, wanted_status: str) -> Claim:
    """Start attempt n+1 of ``kind`` under the payout's row lock, in a transaction of its
    own, if the payout is ``wanted_status`` and may go on (``_claim_locked``)."""
    with transaction.atomic():
        locked = payout_lock(payout.pk)
        if locked.status != wanted_status or not _may_call(locked):
            return NOT_NOW
        return _claim_locked(locked, kind)


def _claim_locked(locked: Payout, kind: str) -> Claim:
    """Start attempt n+1 of ``kind`` of ``locked`` (read under its row lock, in the open
    transaction), if the seller's payouts are not frozen, no other attempt is under
    way and the payout may go on. Returns the step (None: not now) and whether an
    earlier attempt's outcome is unknown, so what it did must be looked up first.
    A claim that is not made leaves ``locked`` to be read again (``_reread``)."""
    now = timezone.now()
    if (frozen := payout_frozen_reason(locked)) is not None:
        # Its money left the available balance already; it goes on once unfrozen (the
        # sweeper, for one still sending; the next run, for one transferred).
        Payout.objects.filter(pk=locked.pk).update(
            failure_reason=frozen[:255], next_attempt_at=None
        )
        return NOT_NOW
    steps = list(locked.steps.order_by("pk"))
    lease = timedelta(seconds=settings.PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS)
    for step in steps:
        if step.outcome != Outcome.IN_FLIGHT:
            continue
        if step.started_at > now - lease:
            return NOT_NOW  # another worker is on it (the sweeper looks after)
        step.outcome, step.finished_at = Outcome.ERROR, now
        step.message = "No answer recorded: the worker stopped during the call"
        step.save(update_fields=["outcome", "finished_at", "message"])
    if locked.next_attempt_at and locked.next_attempt_at > now:
        return NOT_NOW  # backing off
    if locked.attempts_since is None:  # a new round: after a refusal, a return, a run
        locked.attempts_since = now
    if _needs_attention(locked, now):
        return NOT_NOW
    if kind == Step.BANK_PAYOUT and _bank_payout_waits(locked, now):
        return NOT_NOW
    of_kind = [step for step in steps if step.kind == kind]
    attempt = len(of_kind) + 1
    unknown = any(step.outcome == Outcome.ERROR for step in of_kind)
    window = timedelta(hours=settings.PAYMENTS_PAYOUT_ATTENTION_HOURS)
    if attempt == 1 and (
        (locked.sent_at and locked.sent_at < now - lease) or locked.created_at < now - window
    ):
        # A first attempt long after the payout was sent, or made: an older release
        # (before attempts were recorded), or this database before a restore, may
        # have made the call with a key the processor has forgotten. Look first.
        unknown = True
    step = PayoutStep.objects.create(
        payout=locked,
        kind=kind,
        attempt=attempt,
        idempotency_key=f"{locked.idempotency_key}-{KEY_NAMES[kind]}-{attempt}",
        amount_minor=locked.amount_minor if kind == Step.TRANSFER else locked.bank_amount_minor,
    )
    # Should this worker die during the call, the sweeper comes back after the lease.
    locked.next_attempt_at = now + lease
    locked.save(update_fields=["next_attempt_at", "attempts_since"])
    return Claim(step, unknown)


def _reread(payout: Payout) -> Payout:
    """The payout as it is now, after a claim that was not made (what stopped it may
    have written to it)."""
    return Payout.objects.select_related("seller").get(pk=payout.pk)


def _bank_payout_waits(payout: Payout, now: datetime) -> bool:
    """No bank payout while a clawback of its transfer is under way (its amount is not
    known until the reversal answers), and none of nothing: a payout all clawed back is
    done (the processor refuses a payout of 0)."""
    if payout.clawbacks.filter(status=Clawback.Status.IN_FLIGHT).exists():
        payout.next_attempt_at = now + timedelta(seconds=CLAWBACK_WAIT_SECONDS)
        payout.save(update_fields=["next_attempt_at"])
        return True
    if payout.bank_amount_minor == 0:
        payout.status, payout.paid_at = Status.PAID, now
        payout.failure_reason = "Nothing left to pay out: refunds or lost disputes took it back."
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
        return True
    return False


def _needs_attention(payout: Payout, now: datetime) -> bool:
    """Stop a payout that has not got through in the attention window: every attempt
    after that would rely on look-ups alone, and an operator should know why."""
    window = timedelta(hours=settings.PAYMENTS_PAYOUT_ATTENTION_HOURS)
    started = payout.attempts_since or payout.sent_at
    if started is None or started > now - window:
        return False
    last = payout.steps.exclude(message="").order_by("-pk").first()
    known = f"last answer: {last.message}" if last else "no answer recorded"
    step = "transfer" if payout.status == Status.SENDING else "bank payout"
    reason = (
        f"Not through after {settings.PAYMENTS_PAYOUT_ATTENTION_HOURS} hours "
        f"({step}; {known}). Check the processor's dashboard, then retry."
    )[:255]
    Payout.objects.filter(pk=payout.pk).update(attention_reason=reason, next_attempt_at=None)
    payout.attention_reason = reason
    payout_notify_later(payout, "attention")
    return True


def _finish(
    step: PayoutStep,
    outcome: str,
    *,
    object_id: str = "",
    exc: ProcessorError | None = None,
    also: tuple[str, ...] = (),
) -> None:
    """Record the attempt's outcome (with ``also``: more fields set by the caller)."""
    step.outcome, step.finished_at = outcome, timezone.now()
    if object_id:
        step.processor_object_id = object_id
    if exc is not None:
        step.error_code = exc.code[:100]
        step.message = exc.message[:255]
    step.save(
        update_fields=[
            "outcome",
            "finished_at",
            "processor_object_id",
            "error_code",
            "message",
            *also,
        ]
    )


def _retry_later(payout: Payout, step: PayoutStep, exc: ProcessorError, reason: str) -> Payout:
    """A temporary failure: record it and try again after a backoff."""
    delay = min(FIRST_RETRY_SECONDS * 2 ** (step.attempt - 1), LONGEST_RETRY_SECONDS)
    delay = int(delay * random.uniform(0.8, 1.2))
    with transaction.atomic():
        locked = payout_lock(payout.pk)
        retry = locked.status in SENDABLE
        # Known not done (a refusal that passes), or unknown: no answer (a timeout, a
        # 5xx) or a rate limit, which may answer the SDK's retry of a call that timed
        # out after it ran. The next attempt looks an unknown one up first.
        unknown = isinstance(exc, TemporaryProcessorError)
        outcome = Outcome.ERROR if unknown else Outcome.REFUSED
        _finish(PayoutStep.objects.select_for_update().get(pk=step.pk), outcome, exc=exc)
        if retry:  # (an event may have settled it meanwhile)
            locked.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            locked.failure_reason = reason[:255]
            locked.save(update_fields=["next_attempt_at", "failure_reason"])
        return locked


# --- Step 2: the transfer ----------------------------------------------------------------------


def _transfer_step(payout: Payout, claim: Claim | None) -> tuple[Payout, Claim | None]:
    """The transfer attempt ``claim`` (claimed here when None); returns the payout and,
    when it is transferred, the claim of its first bank payout attempt."""
    step, unknown = claim if claim is not None else _claim(payout, Step.TRANSFER, Status.SENDING)
    if step is None:
        return _reread(payout), None
    processor = get_processor(payout.processor)
    destination = payout.seller.payout_account_id
    try:
        found = (
            processor.transfer_find(transfer_group=payout.transfer_group, destination=destination)
            if unknown
            else None
        )
        transfer = found or _transfer_create(processor, payout, step, destination)
    except InvalidProcessorRequest as exc:
        if exc.code in RETRY_LATER_CODES:
            return _retry_later(payout, step, exc, BALANCE_SHORT), None
        with transaction.atomic():
            payout_lock(payout.pk)  # the payout first, then its step (payments.ledger.locks)
            _finish(step, Outcome.REFUSED, exc=exc)
            return payout_transfer_refused(
                payout=payout, reason=f"The transfer was refused: {exc.message}"
            ), None
    except ProcessorError as exc:
        return _retry_later(payout, step, exc, f"Transfer not confirmed yet: {exc.message}"), None
    with transaction.atomic():
        locked = payout_lock(payout.pk)
        _finish(step, Outcome.ADOPTED if found else Outcome.SUCCEEDED, object_id=transfer.id)
        # Its bank payout is due now (the sweeper sends it should this worker die here),
        # in a round of its own: the attention window starts again.
        transferred = payout_transferred_locked(
            locked,
            transfer_id=transfer.id,
            also={"next_attempt_at": timezone.now(), "attempts_since": None},
        )
        if transferred.status != Status.TRANSFERRED or not _may_call(transferred):
            return transferred, None
        return transferred, _claim_locked(transferred, Step.BANK_PAYOUT)


def _transfer_create(
    processor: PaymentProcessor, payout: Payout, step: PayoutStep, destination: str
) -> Transfer:
    return processor.transfer_create(
        amount_minor=step.amount_minor,
        currency=payout.currency,
        destination=destination,
        transfer_group=payout.transfer_group,
        metadata={"payout_id": str(payout.pk), "seller_id": str(payout.seller_id)},
        idempotency_key=step.idempotency_key,
    )


# --- Step 3: the bank payout ---------------------------------------------------------------------


def _bank_payout_step(payout: Payout, claim: Claim | None) -> Payout:
    """The bank payout attempt ``claim`` (claimed here when None)."""
    step, unknown = (
        claim if claim is not None else _claim(payout, Step.BANK_PAYOUT, Status.TRANSFERRED)
    )
    if step is None:
        return _reread(payout)
    processor = get_processor(payout.processor)
    account = payout.seller.payout_account_id
    try:
        found = _bank_payout_lookup(processor, payout, account) if unknown else None
        sent = found or processor.payout_create(
            account_id=account,
            amount_minor=step.amount_minor,
            currency=payout.currency,
            metadata=_bank_metadata(payout, step.attempt),
            idempotency_key=step.idempotency_key,
        )
    except InvalidProcessorRequest as exc:
        if exc.code in RETRY_LATER_CODES:
            return _retry_later(payout, step, exc, f"Bank payout waiting: {exc.message}")
        return _bank_refused(payout, step, exc)
    except ProcessorError as exc:
        return _retry_later(payout, step, exc, f"Bank payout not confirmed yet: {exc.message}")
    return _bank_sent(payout, step, sent, adopted=found is not None)


def _bank_metadata(payout: Payout, attempt: int) -> dict[str, str]:
    return {"payout_id": str(payout.pk), "attempt": str(attempt)}


def _bank_payout_lookup(
    processor: PaymentProcessor, payout: Payout, account: str
) -> ProcessorPayout | None:
    """The bank payout an unanswered earlier attempt made, if any (or, for a payout sent
    before attempts were recorded, the one named by the payout alone)."""
    unanswered = payout.steps.filter(
        kind=Step.BANK_PAYOUT, outcome=Outcome.ERROR, processor_object_id=""
    )
    looks = [(_bank_metadata(payout, step.attempt), step.started_at) for step in unanswered] or [
        ({"payout_id": str(payout.pk)}, payout.sent_at or payout.created_at)
    ]
    for metadata, since in looks:
        found = processor.payout_find(
            account_id=account, metadata=metadata, since=since - timedelta(minutes=5)
        )
        if found is not None:
            return found
    return None


def _bank_refused(payout: Payout, step: PayoutStep, exc: ProcessorError) -> Payout:
    """The processor refused the bank payout: the money stays in the seller's processor
    account, and the next run tries again (after the seller fixes their bank details)."""
    with transaction.atomic():
        locked = payout_lock(payout.pk)
        _finish(PayoutStep.objects.get(pk=step.pk), Outcome.REFUSED, exc=exc)
        locked.failure_reason = f"Bank payout refused: {exc.message}"[:255]
        locked.next_attempt_at = locked.attempts_since = None  # the next run tries again
        locked.save(update_fields=["failure_reason", "next_attempt_at", "attempts_since"])
        payout_notify_later(locked, "bank_refused")
        return locked


def _bank_sent(payout: Payout, step: PayoutStep, sent: ProcessorPayout, *, adopted: bool) -> Payout:
    """Record the bank payout on the attempt that made it (an adopted one is an earlier
    attempt's, whose answer was lost) and the payout as in transit."""

    with transaction.atomic():
        locked = payout_lock(payout.pk)
        steps = PayoutStep.objects.select_for_update().filter(payout=locked, kind=Step.BANK_PAYOUT)
        step = steps.get(pk=step.pk)
        maker = step
        made_by = sent.metadata.get("attempt", "")
        if adopted and made_by.isdigit() and int(made_by) != step.attempt:
            maker = steps.filter(attempt=int(made_by)).first() or step
        if maker != step:
            step.message = f"Found the bank payout of attempt {maker.attempt}"
            _finish(step, Outcome.ADOPTED)
        # Settled already (its event came first, or an adopted one failed): no "on its
        # way"; a failed one leaves the payout waiting for the next run.
        settled = maker.object_status in SETTLED or sent.status in SETTLED
        also: tuple[str, ...] = ()
        if not settled and not maker.object_status:
            maker.object_status, also = sent.status, ("object_status",)
        _finish(
            maker,
            Outcome.ADOPTED if adopted else Outcome.SUCCEEDED,
            object_id=sent.id,
            also=also,
        )
        locked.next_attempt_at = locked.attempts_since = None  # made: its events settle it
        locked.processor_payout_id = sent.id
        fields = ["next_attempt_at", "attempts_since", "processor_payout_id"]
        if sent.arrival_on is not None:
            locked.arrival_on = sent.arrival_on
            fields.append("arrival_on")
        if sent.bank_last4:
            locked.bank_last4 = sent.bank_last4[-4:]
            fields.append("bank_last4")
        on_its_way = not settled and locked.status == Status.TRANSFERRED
        if on_its_way:
            locked.status, locked.failure_reason = Status.IN_TRANSIT, ""
            fields += ["status", "failure_reason"]
        locked.save(update_fields=fields)
        if settled:
            sellers_money_lock([locked.seller_id])
            bank_payout_settle(
                payout=locked,
                step=maker,
                status=maker.object_status or sent.status,
                message=sent.failure_message,
            )
            return _reread(locked)
        if on_its_way:
            payout_notify_later(locked, "sent")
        return locked  # as saved, under the lock


# --- Retries ------------------------------------------------------------------------------


def payouts_sweep(*, older_than_minutes: int = 10) -> int:
    """Send again the payouts a lost task, a crash or a temporary error left behind: those
    whose retry is due, and those scheduled or sending for ``older_than_minutes``
    without a retry time. Payouts waiting for an operator are left alone."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=older_than_minutes)
    due = Q(method=PayoutMethod.PROCESSOR, attention_reason="") & (
        Q(status__in=SENDABLE, next_attempt_at__lte=now)
        | Q(
            status__in=(Status.SCHEDULED, Status.SENDING),
            next_attempt_at__isnull=True,
            created_at__lt=cutoff,
        )
    )
    swept = 0
    for payout in Payout.objects.filter(due).select_related("seller").order_by("pk"):
        try:
            payout_send(payout=payout)
        except ProcessorError:
            continue
        swept += 1
    return swept


def bank_payouts_retry_for_run(*, seller_ids: list[int] | None = None, first_slot: int = 0) -> int:
    """The payout run's part: send again the bank payouts of transferred payouts whose
    bank payout was refused, failed or returned (their money waits in the seller's
    processor account), as a new round of attempts, paced after the run's own sends
    (from ``first_slot``). Returns how many."""

    waiting = Payout.objects.filter(
        method=PayoutMethod.PROCESSOR,
        status=Status.TRANSFERRED,
        attention_reason="",
        next_attempt_at__isnull=True,
    )
    if seller_ids is not None:
        waiting = waiting.filter(seller_id__in=seller_ids)
    pks = list(waiting.order_by("pk").values_list("pk", flat=True))
    waiting.filter(pk__in=pks).update(next_attempt_at=timezone.now())  # still waiting
    for slot, pk in enumerate(pks, start=first_slot):
        enqueue_on_commit("payments.tasks.payout_send_task", pk, countdown=send_delay(slot) or None)
    return len(pks)
