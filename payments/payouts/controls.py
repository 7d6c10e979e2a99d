"""What operators do to payouts: approve, hold, release, cancel, retry, and mark
a manual (bank transfer) payout paid. Every action is recorded in the audit trail
(``AuditRecord``) with who, when and why.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.errors import InvalidState
from payments.ledger.audit import audit_record
from payments.ledger.locks import payout_lock
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerTransaction, Payout, PayoutMethod
from payments.payouts.guard import PayoutStopped, payout_frozen_reason, payout_guard
from payments.payouts.planning import (
    SkippedSeller,
    amounts_claimed,
    payout_create,
    payout_enqueue,
    payout_reserves,
    plan_payout,
)
from payments.payouts.policies import PolicyBook
from payments.payouts.settlement import payout_notify_later

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status


def payout_approve(*, payout: Payout, by: User, via: str = "code") -> Payout:
    """Four eyes: the operator who created a payout cannot approve it. An approved payout
    is checked again before it is sent (``payout_guard``): frozen, it is held; no longer
    covered, it is cancelled, and ``PayoutStopped`` says why."""
    with transaction.atomic():
        payout = payout_lock(payout.pk)
        if payout.status != Status.AWAITING_APPROVAL:
            raise InvalidState("Only a payout awaiting approval can be approved.")
        if payout.created_by_id is not None and payout.created_by_id == by.pk:
            raise InvalidState("The operator who created a payout cannot approve it.")
        payout.status, payout.approved_by = Status.SCHEDULED, by
        payout.save(update_fields=["status", "approved_by"])
        audit_record(target=payout, action="approve", by=by, via=via)
        stopped = payout_guard(payout)
        if stopped is None:
            payout_enqueue(payout)
    if stopped is not None:
        raise PayoutStopped(f"Approved, but not sent: {stopped}.")
    return payout


def _operator_action(
    payout: Payout,
    by: User,
    action: str,
    reason: str,
    allowed: tuple[str, ...],
    via: str = "code",
) -> Payout:
    payout = payout_lock(payout.pk)
    if payout.status not in allowed:
        raise InvalidState(f"A {payout.get_status_display().lower()} payout cannot be {action}ed.")
    audit_record(target=payout, action=action, by=by, reason=reason, via=via)
    return payout


@transaction.atomic
def payout_hold(*, payout: Payout, by: User, reason: str, via: str = "code") -> Payout:
    """Stop a payout that has not been sent yet, until it is released."""
    payout = _operator_action(
        payout, by, "hold", reason, (Status.AWAITING_APPROVAL, Status.SCHEDULED), via
    )
    payout.status = Status.HELD
    payout.save(update_fields=["status"])
    return payout


def payout_release(*, payout: Payout, by: User, reason: str = "", via: str = "code") -> Payout:
    """Let a held payout go: it is sent at once, unless it still needs a second
    operator's approval (holding never stands in for the four eyes). It is checked
    first (``payout_guard``): while the seller is frozen it stays held (nothing is
    written); no longer covered, it is cancelled. Either raises ``PayoutStopped``."""
    with transaction.atomic():
        payout = _operator_action(payout, by, "release", reason, (Status.HELD,), via)
        frozen = payout_frozen_reason(payout)
        if frozen is not None:
            raise PayoutStopped(f"It stays held: {frozen}. Unfreeze the seller first.")
        needs_approval = payout.requires_approval and payout.approved_by_id is None
        payout.status = Status.AWAITING_APPROVAL if needs_approval else Status.SCHEDULED
        payout.failure_reason = ""
        payout.save(update_fields=["status", "failure_reason"])
        stopped = payout_guard(payout)
        if stopped is None:
            payout_enqueue(payout)
    if stopped is not None:
        raise PayoutStopped(f"Released, but not sent: {stopped}.")
    return payout


@transaction.atomic
def payout_cancel(*, payout: Payout, by: User, reason: str, via: str = "code") -> Payout:
    """Cancel a payout not sent yet; its amount stays available for the next run."""
    payout = _operator_action(payout, by, "cancel", reason, Payout.OPEN, via)
    payout.breakdown.all().delete()
    payout.status = Status.CANCELLED
    payout.save(update_fields=["status"])
    return payout


def payout_retry(*, payout: Payout, by: User, reason: str = "", via: str = "code") -> Payout:
    """After a failed payout: pay the seller again now, once, by the same rules as a
    run (freeze, payout account, reserve, minimum, approval threshold)."""
    with transaction.atomic():
        payout = _operator_action(payout, by, "retry", reason, (Status.FAILED,), via)
        seller, currency = payout.seller, payout.currency
        account = seller_account(seller, Kind.AVAILABLE, currency)
        book = PolicyBook.load([seller.pk])
        decision = plan_payout(
            seller=seller,
            currency=currency,
            policy=book.for_seller(seller.pk),
            period=f"retry-{payout.pk}",
            available=-account.balance_minor,
            claimed=amounts_claimed([seller.pk]).get((seller.pk, currency), 0),
            reserve=payout_reserves(book, [seller.pk], timezone.now()).get(
                (seller.pk, currency), 0
            ),
        )
        if isinstance(decision, SkippedSeller):
            raise InvalidState(f"Not paid again: {decision.reason}.")
        created = payout_create(decision, account=account, run=None, by=by)
        if created is None:
            raise InvalidState(
                "Not paid again: it was retried already, or the seller was frozen or "
                "paid meanwhile."
            )
    return created


def payout_mark_paid(*, payout: Payout, by: User, bank_reference: str, via: str = "code") -> Payout:
    """A manual payout the operator has paid by bank transfer: the seller's available
    balance becomes paid out from the platform's bank. Marking it paid again changes
    nothing. It is checked first (``payout_guard``): a frozen seller's payout is held,
    one no longer covered is cancelled, and ``PayoutStopped`` says why (if the bank
    transfer went out anyway, the operator recalls it: the ledger never pays it)."""
    with transaction.atomic():
        payout = payout_lock(payout.pk)
        if payout.method != PayoutMethod.MANUAL:
            raise InvalidState(
                "Only a manual payout is marked paid by hand; the processor reports the others."
            )
        if payout.status == Status.PAID:
            return payout
        if payout.status != Status.SCHEDULED:
            raise InvalidState(
                f"A {payout.get_status_display().lower()} payout cannot be marked paid."
            )
        if not bank_reference.strip():
            raise InvalidState("Give the bank transfer's reference.")
        stopped = payout_guard(payout)
        if stopped is None:
            _post_bank_payout(payout, by, bank_reference.strip(), via)
    if stopped is not None:
        raise PayoutStopped(f"Not marked paid: {stopped}.")
    return payout


def _post_bank_payout(payout: Payout, by: User, bank_reference: str, via: str) -> None:
    seller, currency, amount = payout.seller, payout.currency, payout.amount_minor
    available = seller_account(seller, Kind.AVAILABLE, currency)
    in_transit = seller_account(seller, Kind.IN_TRANSIT, currency)
    ledger_post(
        kind=TxnKind.PAYOUT_SENT,
        idempotency_key=f"payout:{payout.pk}:sent",
        postings=[Posting(available, amount), Posting(in_transit, -amount)],
        description=f"Payout #{payout.pk} sent by bank transfer",
        reference_type="payout",
        reference_id=payout.pk,
    )
    ledger_post(
        kind=TxnKind.PAYOUT_PAID,
        idempotency_key=f"payout:{payout.pk}:paid",
        postings=[
            Posting(in_transit, amount),
            Posting(platform_account(Kind.BANK, currency), -amount),
        ],
        description=f"Payout #{payout.pk} paid by bank transfer {bank_reference}",
        reference_type="payout",
        reference_id=payout.pk,
    )
    now = timezone.now()
    payout.status, payout.sent_at, payout.paid_at = Status.PAID, now, now
    payout.bank_reference, payout.processor = bank_reference[:100], "manual"
    # The operator's bank transfer: it arrives the day it is marked paid, in the
    # account on the seller's profile.
    payout.arrival_on = timezone.localdate(now)
    payout.bank_last4 = payout.seller.bank_account_number[-4:]
    payout.save(
        update_fields=[
            "status",
            "sent_at",
            "paid_at",
            "bank_reference",
            "processor",
            "arrival_on",
            "bank_last4",
        ]
    )
    audit_record(target=payout, action="mark_paid", by=by, reason=payout.bank_reference, via=via)
    payout_notify_later(payout, "paid")
