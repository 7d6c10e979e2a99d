"""Sending payouts through the processor, and the processor's answer.

Sending (``payout_send``) is exactly once: the payout is marked ``sending``
and its amount moved from available to in transit in the ledger
(``payout:<id>:sent``) before the processor is called; the transfer and the
payout carry keys derived from the payout's id, so a retry after a crash or
a timeout repeats the same processor operations rather than new ones. The
processor's ``payout.paid`` / ``payout.failed`` events settle it
(``payout:<id>:paid``: in transit to the processor's cash; ``payout:<id>:failed``:
back to available, where the next run pays it again).

We transfer to the seller's connected account and then create the payout of
that balance ourselves, because the platform controls the connected
accounts' payout schedule (manual payouts at the processor): the money
leaves on our schedule and every bank payout is one of our ``Payout`` rows.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.errors import InvalidState
from marketplace.task_queue import enqueue_on_commit
from payments.ledger import Posting, ledger_account, ledger_post
from payments.locks import payout_lock, sellers_money_lock
from payments.models import LedgerAccount, LedgerTransaction, Payout, PayoutMethod
from payments.payout_guard import payout_frozen_reason, payout_guard
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, ProcessorError

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
BALANCE_SHORT = "Waiting for the platform's processor balance; retried automatically"


def payout_send(*, payout: Payout) -> Payout:
    """Send a scheduled payout through the processor, exactly once (see the module docstring)."""
    with transaction.atomic():
        payout = payout_lock(payout.pk)
        if payout.method != PayoutMethod.PROCESSOR:
            return payout
        if payout.status == Status.SCHEDULED:
            if payout_guard(payout) is not None:
                return payout  # held or cancelled, with the reason on it
            accounts = _payout_accounts(payout, Kind.AVAILABLE, Kind.IN_TRANSIT)
            ledger_post(
                kind=TxnKind.PAYOUT_SENT,
                idempotency_key=f"payout:{payout.pk}:sent",
                reference_type="payout",
                reference_id=payout.pk,
                postings=[
                    Posting(accounts[Kind.AVAILABLE], payout.amount_minor),
                    Posting(accounts[Kind.IN_TRANSIT], -payout.amount_minor),
                ],
                description=f"Payout #{payout.pk} sent",
            )
            payout.status, payout.sent_at = Status.SENDING, timezone.now()
            payout.processor = get_processor().name
            payout.save(update_fields=["status", "sent_at", "processor"])
        elif payout.status != Status.SENDING:
            return payout
        elif (frozen := payout_frozen_reason(payout)) is not None:
            # Its money left the available balance already; it goes on once unfrozen.
            Payout.objects.filter(pk=payout.pk).update(failure_reason=frozen[:255])
            return payout
    processor = get_processor(payout.processor)
    metadata = {"payout_id": str(payout.pk), "seller_id": str(payout.seller_id)}
    try:
        transfer = processor.transfer_create(
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            destination=payout.seller.payout_account_id,
            transfer_group=f"payout-{payout.pk}",
            source_charge="",
            metadata=metadata,
            idempotency_key=f"{payout.idempotency_key}-transfer",
        )
        sent = processor.payout_create(
            account_id=payout.seller.payout_account_id,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            metadata=metadata,
            idempotency_key=f"{payout.idempotency_key}-payout",
        )
    except InvalidProcessorRequest as exc:
        if exc.code == "balance_insufficient":
            # Card funds not settled yet at the processor: not the seller's
            # failure. The payout stays "sending" and the sweeper retries it.
            Payout.objects.filter(pk=payout.pk).update(failure_reason=BALANCE_SHORT)
            payout.refresh_from_db()
            return payout
        return payout_failed(payout=payout, reason=exc.message)
    with transaction.atomic():
        current = payout_lock(payout.pk)
        if current.status == Status.SENDING:
            current.status = Status.IN_TRANSIT
        current.processor_transfer_id = transfer.id
        current.processor_payout_id = sent.id
        current.failure_reason = ""
        current.save(
            update_fields=[
                "status",
                "processor_transfer_id",
                "processor_payout_id",
                "failure_reason",
            ]
        )
        if not payout.processor_payout_id:  # the first time it got through
            current.seller = payout.seller
            payout_notify_later(current, "sent")
    return current


def _payout_accounts(payout: Payout, *kinds: str) -> dict[str, LedgerAccount]:
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
        if kind not in found:
            seller = None if kind in platform_kinds else payout.seller
            found[kind] = ledger_account(kind=kind, currency=payout.currency, seller=seller)
    return found


def _payout_locked(payout: Payout) -> Payout:
    """The payout read again under its row lock, then its seller's money lock."""
    locked = payout_lock(payout.pk)
    sellers_money_lock([locked.seller_id])
    return locked


@transaction.atomic
def payout_paid(*, payout: Payout) -> Payout:
    """The processor paid the seller's bank: in transit becomes paid out. Safe to repeat."""
    return _payout_paid(_payout_locked(payout))


def _payout_paid(payout: Payout) -> Payout:
    """``payout_paid`` of a payout read under its lock in the current transaction."""
    if payout.status in (Status.PAID, Status.FAILED):
        return payout
    if payout.status not in (Status.SENDING, Status.IN_TRANSIT):
        raise InvalidState(f"Payout #{payout.pk} was not sent.")
    accounts = _payout_accounts(payout, Kind.IN_TRANSIT, Kind.PROCESSOR)
    ledger_post(
        kind=TxnKind.PAYOUT_PAID,
        idempotency_key=f"payout:{payout.pk}:paid",
        reference_type="payout",
        reference_id=payout.pk,
        postings=[
            Posting(accounts[Kind.IN_TRANSIT], payout.amount_minor),
            Posting(accounts[Kind.PROCESSOR], -payout.amount_minor),
        ],
        description=f"Payout #{payout.pk} paid",
    )
    payout.status, payout.paid_at = Status.PAID, timezone.now()
    payout.save(update_fields=["status", "paid_at"])
    payout_notify_later(payout, "paid")
    return payout


@transaction.atomic
def payout_failed(*, payout: Payout, reason: str) -> Payout:
    """The payout did not reach the seller: the money is available again and is paid next run."""
    return _payout_failed(_payout_locked(payout), reason)


def _payout_failed(payout: Payout, reason: str) -> Payout:
    """``payout_failed`` of a payout read under its lock in the current transaction."""
    if payout.status in (Status.PAID, Status.FAILED, Status.CANCELLED):
        return payout
    if payout.status in (Status.SENDING, Status.IN_TRANSIT):
        accounts = _payout_accounts(payout, Kind.IN_TRANSIT, Kind.AVAILABLE)
        ledger_post(
            kind=TxnKind.PAYOUT_FAILED,
            idempotency_key=f"payout:{payout.pk}:failed",
            reference_type="payout",
            reference_id=payout.pk,
            postings=[
                Posting(accounts[Kind.IN_TRANSIT], payout.amount_minor),
                Posting(accounts[Kind.AVAILABLE], -payout.amount_minor),
            ],
            description=f"Payout #{payout.pk} failed",
        )
    payout.breakdown.all().delete()  # its entries are paid by the next payout
    payout.status, payout.failed_at = Status.FAILED, timezone.now()
    payout.failure_reason = reason[:255]
    payout.save(update_fields=["status", "failed_at", "failure_reason"])
    payout_notify_later(payout, "failed")
    return payout


@transaction.atomic(savepoint=False)  # all or nothing with its caller's transaction
def payout_sync(
    *, processor_name: str, processor_payout_id: str, status: str, metadata: dict[str, str]
) -> None:
    """Apply a ``payout.paid`` or ``payout.failed`` event to our payout: the one with
    that processor payout id, else (not recorded yet) the one its metadata names."""
    if status not in ("paid", "failed", "canceled"):
        return
    # An empty id would match every payout not sent yet: match by the name only then.
    by_processor_id = (
        Q(processor=processor_name, processor_payout_id=processor_payout_id)
        if processor_payout_id
        else Q(pk__in=[])
    )
    named = metadata.get("payout_id", "")
    wanted = (by_processor_id | Q(pk=int(named))) if named.isdigit() else by_processor_id
    # Both lookups in one query, which takes the rows' locks (in key order) at once.
    candidates = list(
        Payout.objects.select_for_update(no_key=True, of=("self",))
        .select_related("seller")
        .filter(wanted)
        .order_by("pk")
    )
    payout = next(
        (
            p
            for p in candidates
            if p.processor == processor_name and p.processor_payout_id == processor_payout_id
        ),
        candidates[0] if candidates else None,
    )
    if payout is None:
        return
    sellers_money_lock([payout.seller_id])
    if status == "paid":
        _payout_paid(payout)
    else:
        _payout_failed(payout, f"The processor reported the payout {status}.")


def payouts_sweep(*, older_than_minutes: int = 10) -> int:
    """Send again payouts stuck in "scheduled" or "sending" (a lost task, a crash, a
    timeout, a short processor balance). The processor keys make it safe."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    stuck = Payout.objects.filter(
        method=PayoutMethod.PROCESSOR,
        status__in=(Status.SCHEDULED, Status.SENDING),
        created_at__lt=cutoff,
    ).order_by("pk")
    swept = 0
    for payout in stuck:
        try:
            payout_send(payout=payout)
        except ProcessorError:
            continue
        swept += 1
    return swept


def payout_notify_later(payout: Payout, event: str) -> None:
    """Email the seller and tell integrators, once this transaction commits."""
    from payments.integration_events import payout_announce
    from payments.tasks import payout_notify_task

    payout_announce(payout=payout, event=event)
    enqueue_on_commit(payout_notify_task, payout.pk, event)
