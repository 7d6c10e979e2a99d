"""Paying sellers: payout runs, sending, and the processor's answer.

A payout run (``run_payouts``) releases due holds, finds the sellers whose
schedule is due, and creates one ``Payout`` per seller and currency for
their available balance less what earlier open payouts already claim. The
unique (seller, currency, period) constraint makes a second run for the same
period a no-op, also when two runs race. Amounts under the policy's minimum
roll over; amounts above its approval threshold wait for an operator.

Sending (``payout_send``) is exactly once: the payout is marked ``sending``
and its amount moved from available to in transit in the ledger
(``payout:<id>:sent``) before the processor is called; the transfer and the
payout carry keys derived from the payout's id, so a retry after a crash or
a timeout repeats the same processor operations rather than new ones. The
processor's ``payout.paid`` / ``payout.failed`` events settle it
(``payout:<id>:paid``: in transit to the processor's cash; ``payout:<id>:failed``:
back to available, where the next run pays it again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Seller, User
from marketplace.errors import InvalidState
from payments.holds import holds_release_due
from payments.ledger import Posting, ledger_post, platform_account, seller_account
from payments.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutAction,
    PayoutEntry,
    PayoutPolicy,
)
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest

logger = logging.getLogger(__name__)
Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
PAYOUT_TXN_KINDS = (TxnKind.PAYOUT_SENT, TxnKind.PAYOUT_PAID, TxnKind.PAYOUT_FAILED)


def payout_policy_for(seller: Seller) -> PayoutPolicy:
    """The seller's own policy, else the platform default (made on first use)."""
    own = PayoutPolicy.objects.filter(seller=seller).first()
    if own is not None:
        return own
    default, _ = PayoutPolicy.objects.get_or_create(seller=None)
    return default


def payout_period(policy: PayoutPolicy, now: datetime) -> str | None:
    """The schedule period ``now`` falls in, or None when the schedule is not due today."""
    Schedule = PayoutPolicy.Schedule
    day = timezone.localdate(now)
    if policy.schedule == Schedule.DAILY:
        return day.isoformat()
    if policy.schedule == Schedule.WEEKLY and day.weekday() == policy.weekday:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if policy.schedule == Schedule.MONTHLY and day.day == policy.month_day:
        return f"{day:%Y-%m}"
    return None


@dataclass
class PlannedPayout:
    seller: Seller
    currency: str
    amount_minor: int
    period: str
    status: str
    payout: Payout | None = None


@dataclass
class PayoutRunReport:
    planned: list[PlannedPayout] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    holds_released: int = 0


def _claimed(seller: Seller, currency: str) -> int:
    """What is already spoken for in the available balance: open payouts not yet sent,
    and the seller's part of refunds reserved (not yet confirmed) on released sales."""
    from payments.models import Refund, RefundLine

    payouts = Payout.objects.filter(
        seller=seller, currency=currency, status__in=Payout.OPEN
    ).aggregate(total=Sum("amount_minor"))["total"]
    refunds = RefundLine.objects.filter(
        refund__status=Refund.Status.PENDING,
        refund__currency=currency,
        order_line__seller_order__seller=seller,
        order_line__seller_order__released_at__isnull=False,
    ).aggregate(total=Sum("seller_amount_minor"))["total"]
    return int(payouts or 0) + int(refunds or 0)


def run_payouts(
    *,
    now: datetime | None = None,
    sellers: Sequence[Seller] | None = None,
    dry_run: bool = False,
    created_by: User | None = None,
) -> PayoutRunReport:
    """Create the payouts that are due (see the module docstring); ``dry_run`` writes nothing.

    Naming ``sellers`` runs them whatever their schedule (a manual run).
    """
    now = now or timezone.now()
    report = PayoutRunReport()
    if not dry_run:
        report.holds_released = holds_release_due(now=now)
    accounts = (
        LedgerAccount.objects.filter(kind=Kind.AVAILABLE, balance_minor__lt=0)
        .select_related("seller")
        .order_by("seller_id", "currency")
    )
    if sellers is not None:
        accounts = accounts.filter(seller__in=sellers)
    for account in accounts:
        seller = account.seller
        assert seller is not None
        policy = payout_policy_for(seller)
        period = payout_period(policy, now)
        if sellers is not None:
            period = f"manual-{timezone.localdate(now).isoformat()}"
        if period is None:
            continue
        if policy.frozen:
            report.skipped.append(f"{seller}: payouts frozen ({policy.frozen_reason})")
            continue
        if not (seller.can_receive_payouts and seller.payout_account_id):
            report.skipped.append(f"{seller}: payout account not enabled")
            continue
        amount = -account.balance_minor - _claimed(seller, account.currency)
        minimum = int(policy.minimums.get(account.currency, 0))
        if amount <= 0 or amount < minimum:
            report.skipped.append(f"{seller}: {amount} {account.currency} under the minimum")
            continue
        threshold = policy.approval_thresholds.get(account.currency)
        status = (
            Status.AWAITING_APPROVAL
            if threshold is not None and amount > int(threshold)
            else Status.SCHEDULED
        )
        plan = PlannedPayout(seller, account.currency, amount, period, status)
        report.planned.append(plan)
        if not dry_run:
            plan.payout = _payout_create(plan, account, created_by)
    return report


def _payout_create(
    plan: PlannedPayout, account: LedgerAccount, created_by: User | None
) -> Payout | None:
    """One payout for the period, with its breakdown; None if another run made it first."""
    try:
        with transaction.atomic():
            LedgerAccount.objects.select_for_update().get(pk=account.pk)
            payout = Payout.objects.create(
                seller=plan.seller,
                currency=plan.currency,
                amount_minor=plan.amount_minor,
                period=plan.period,
                status=plan.status,
                created_by=created_by,
            )
            entries = LedgerEntry.objects.filter(account=account, payout_item__isnull=True).exclude(
                transaction__kind__in=PAYOUT_TXN_KINDS
            )
            PayoutEntry.objects.bulk_create(
                PayoutEntry(payout=payout, entry_id=entry_id)
                for entry_id in entries.values_list("pk", flat=True)
            )
    except IntegrityError:
        return None
    if payout.status == Status.SCHEDULED:
        from payments.tasks import payout_send_task

        transaction.on_commit(lambda: payout_send_task.delay(payout.pk))
    return payout


def payout_approve(*, payout: Payout, by: User) -> Payout:
    """Four eyes: the operator who created a payout cannot approve it."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status != Status.AWAITING_APPROVAL:
            raise InvalidState("Only a payout awaiting approval can be approved.")
        if payout.created_by_id is not None and payout.created_by_id == by.pk:
            raise InvalidState("The operator who created a payout cannot approve it.")
        payout.status, payout.approved_by = Status.SCHEDULED, by
        payout.save(update_fields=["status", "approved_by"])
        PayoutAction.objects.create(payout=payout, actor=by, action="approve")
    from payments.tasks import payout_send_task

    transaction.on_commit(lambda: payout_send_task.delay(payout.pk))
    return payout


def payout_send(*, payout: Payout) -> Payout:
    """Send a scheduled payout through the processor, exactly once (see the module docstring)."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("seller").get(pk=payout.pk)
        if payout.status == Status.SCHEDULED:
            seller = payout.seller
            ledger_post(
                kind=TxnKind.PAYOUT_SENT,
                idempotency_key=f"payout:{payout.pk}:sent",
                reference_type="payout",
                reference_id=payout.pk,
                postings=[
                    Posting(
                        seller_account(seller, Kind.AVAILABLE, payout.currency), payout.amount_minor
                    ),
                    Posting(
                        seller_account(seller, Kind.IN_TRANSIT, payout.currency),
                        -payout.amount_minor,
                    ),
                ],
                description=f"Payout #{payout.pk} sent",
            )
            payout.status, payout.sent_at = Status.SENDING, timezone.now()
            payout.processor = get_processor().name
            payout.save(update_fields=["status", "sent_at", "processor"])
        elif payout.status != Status.SENDING:
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
            Payout.objects.filter(pk=payout.pk).update(
                failure_reason="Waiting for the platform's processor balance; retried automatically"
            )
            payout.refresh_from_db()
            return payout
        return payout_failed(payout=payout, reason=exc.message)
    with transaction.atomic():
        current = Payout.objects.select_for_update().get(pk=payout.pk)
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
            _notify(current.pk, "sent")
    return current


@transaction.atomic
def payout_paid(*, payout: Payout) -> Payout:
    """The processor paid the seller's bank: in transit becomes paid out. Safe to repeat."""
    payout = Payout.objects.select_for_update().select_related("seller").get(pk=payout.pk)
    if payout.status in (Status.PAID, Status.FAILED):
        return payout
    if payout.status not in (Status.SENDING, Status.IN_TRANSIT):
        raise InvalidState(f"Payout #{payout.pk} was not sent.")
    ledger_post(
        kind=TxnKind.PAYOUT_PAID,
        idempotency_key=f"payout:{payout.pk}:paid",
        reference_type="payout",
        reference_id=payout.pk,
        postings=[
            Posting(
                seller_account(payout.seller, Kind.IN_TRANSIT, payout.currency), payout.amount_minor
            ),
            Posting(platform_account(Kind.PROCESSOR, payout.currency), -payout.amount_minor),
        ],
        description=f"Payout #{payout.pk} paid",
    )
    payout.status, payout.paid_at = Status.PAID, timezone.now()
    payout.save(update_fields=["status", "paid_at"])
    _notify(payout.pk, "paid")
    return payout


@transaction.atomic
def payout_failed(*, payout: Payout, reason: str) -> Payout:
    """The payout did not reach the seller: the money is available again and is paid next run."""
    payout = Payout.objects.select_for_update().select_related("seller").get(pk=payout.pk)
    if payout.status in (Status.PAID, Status.FAILED, Status.CANCELLED):
        return payout
    if payout.status in (Status.SENDING, Status.IN_TRANSIT):
        ledger_post(
            kind=TxnKind.PAYOUT_FAILED,
            idempotency_key=f"payout:{payout.pk}:failed",
            reference_type="payout",
            reference_id=payout.pk,
            postings=[
                Posting(
                    seller_account(payout.seller, Kind.IN_TRANSIT, payout.currency),
                    payout.amount_minor,
                ),
                Posting(
                    seller_account(payout.seller, Kind.AVAILABLE, payout.currency),
                    -payout.amount_minor,
                ),
            ],
            description=f"Payout #{payout.pk} failed",
        )
    payout.breakdown.all().delete()  # its entries are paid by the next payout
    payout.status, payout.failed_at = Status.FAILED, timezone.now()
    payout.failure_reason = reason[:255]
    payout.save(update_fields=["status", "failed_at", "failure_reason"])
    _notify(payout.pk, "failed")
    return payout


def payout_sync(
    *, processor_name: str, processor_payout_id: str, status: str, metadata: dict[str, str]
) -> None:
    """Apply a ``payout.paid`` or ``payout.failed`` event to our payout."""
    payout = Payout.objects.filter(
        processor=processor_name, processor_payout_id=processor_payout_id
    ).first()
    if payout is None and metadata.get("payout_id", "").isdigit():
        payout = Payout.objects.filter(pk=int(metadata["payout_id"])).first()
    if payout is None:
        return
    if status == "paid":
        payout_paid(payout=payout)
    elif status in ("failed", "canceled"):
        payout_failed(payout=payout, reason=f"The processor reported the payout {status}.")


def _operator_action(
    payout: Payout, by: User, action: str, reason: str, allowed: tuple[str, ...]
) -> Payout:
    payout = Payout.objects.select_for_update().get(pk=payout.pk)
    if payout.status not in allowed:
        raise InvalidState(f"A {payout.get_status_display().lower()} payout cannot be {action}ed.")
    PayoutAction.objects.create(payout=payout, actor=by, action=action, reason=reason[:255])
    return payout


@transaction.atomic
def payout_hold(*, payout: Payout, by: User, reason: str) -> Payout:
    """Stop a payout that has not been sent yet, until it is released."""
    payout = _operator_action(
        payout, by, "hold", reason, (Status.AWAITING_APPROVAL, Status.SCHEDULED)
    )
    payout.status = Status.HELD
    payout.save(update_fields=["status"])
    return payout


@transaction.atomic
def payout_release(*, payout: Payout, by: User, reason: str = "") -> Payout:
    """Let a held payout go (it is sent at once)."""
    from payments.tasks import payout_send_task

    payout = _operator_action(payout, by, "release", reason, (Status.HELD,))
    payout.status = Status.SCHEDULED
    payout.save(update_fields=["status"])
    transaction.on_commit(lambda: payout_send_task.delay(payout.pk))
    return payout


@transaction.atomic
def payout_cancel(*, payout: Payout, by: User, reason: str) -> Payout:
    """Cancel a payout not sent yet; its amount stays available for the next run."""
    payout = _operator_action(payout, by, "cancel", reason, Payout.OPEN)
    payout.breakdown.all().delete()
    payout.status = Status.CANCELLED
    payout.save(update_fields=["status"])
    return payout


def payouts_sweep(*, older_than_minutes: int = 10) -> int:
    """Send again payouts stuck in "scheduled" or "sending" (a lost task, a crash, a
    timeout, a short processor balance). The processor keys make it safe."""
    from datetime import timedelta

    from payments.processors.base import ProcessorError

    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    stuck = Payout.objects.filter(
        status__in=(Status.SCHEDULED, Status.SENDING), created_at__lt=cutoff
    ).order_by("pk")
    swept = 0
    for payout in stuck:
        try:
            payout_send(payout=payout)
        except ProcessorError:
            continue
        swept += 1
    return swept


@dataclass
class NextPayout:
    date: datetime | None
    estimate_minor: int
    currency: str


def next_payout_for(*, seller: Seller, currency: str, now: datetime | None = None) -> NextPayout:
    """When the seller's schedule next pays, and roughly how much (what is available now)."""
    from datetime import timedelta

    now = now or timezone.now()
    policy = payout_policy_for(seller)
    available = -int(
        LedgerAccount.objects.filter(seller=seller, kind=Kind.AVAILABLE, currency=currency)
        .values_list("balance_minor", flat=True)
        .first()
        or 0
    )
    estimate = max(available - _claimed(seller, currency), 0)
    if policy.schedule == PayoutPolicy.Schedule.MANUAL or policy.frozen:
        return NextPayout(None, estimate, currency)
    for days in range(1, 62):
        candidate = now + timedelta(days=days)
        if payout_period(policy, candidate) is not None:
            return NextPayout(candidate, estimate, currency)
    return NextPayout(None, estimate, currency)


def _notify(payout_id: int, event: str) -> None:
    from payments.tasks import payout_notify_task

    transaction.on_commit(lambda: payout_notify_task.delay(payout_id, event))


def payout_retry(*, payout: Payout, by: User, reason: str = "") -> Payout:
    """After a failed payout: pay the seller's available balance again now, once."""
    with transaction.atomic():
        payout = _operator_action(payout, by, "retry", reason, (Status.FAILED,))
        seller = payout.seller
        account = seller_account(seller, Kind.AVAILABLE, payout.currency)
        amount = -account.balance_minor - _claimed(seller, payout.currency)
        if amount <= 0:
            raise InvalidState("Nothing is available to pay again.")
        plan = PlannedPayout(
            seller, payout.currency, amount, f"retry-{payout.pk}", Status.SCHEDULED
        )
        created = _payout_create(plan, account, by)
        if created is None:
            raise InvalidState("This payout was retried already.")
    return created
