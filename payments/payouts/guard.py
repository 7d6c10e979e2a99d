"""The one check a payout passes before its money moves.

A payout is planned from the seller's available balance when a run makes it,
but money can change hands before it is sent: the sale is refunded or
disputed, an operator freezes the seller. So every step that moves a
payout's money (send, the sweeper's re-send, approve, release, mark paid)
re-checks it, holding the payout's row lock and the seller's money lock
(``payments.ledger.locks``), with this rule:

- the seller's payouts are frozen: the payout is **held** (it waits for an
  operator to release it once unfrozen);
- the payout is larger than what is payable now (the available balance less
  what other open payouts and pending refunds of released sales claim, less
  the reserve the payout kept back): it is **cancelled**, and what is left
  stays available for the next run.

Either way the reason is recorded on the payout (an ``AuditRecord`` with no
actor: the system did it) and nothing is sent. Freezing a seller holds every
open payout of theirs at once (``payouts_hold_for_freeze``).
"""

from __future__ import annotations

from django.db.models import Q

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from marketplace.kernel.errors import InvalidState
from payments.ledger.audit import audit_record
from payments.ledger.locks import sellers_money_lock
from payments.models import Payout, PayoutPolicy
from payments.payouts.planning import payable_now
from payments.payouts.policies import frozen_text

Status = Payout.Status


class PayoutStopped(InvalidState):
    """A payout was held or cancelled by the check instead of going ahead."""

    code = "payout_stopped"


def payout_frozen_reason(payout: Payout) -> str | None:
    """Why the payout's seller may not be paid now, if their payouts are frozen: the
    seller's own policy governs, else the platform default (``payout_policy_for``).
    Both are read in one statement, as this is checked before every money step."""
    governing: dict[int | None, tuple[bool, str]] = {}
    for seller_id, frozen, reason in (
        PayoutPolicy.objects.filter(Q(seller_id=payout.seller_id) | Q(seller__isnull=True))
        .order_by("-pk")  # (the lowest pk wins, as ``.first()`` would)
        .values_list("seller_id", "frozen", "frozen_reason")
    ):
        governing[seller_id] = (frozen, reason)
    frozen, reason = governing.get(payout.seller_id) or governing.get(None) or (False, "")
    return frozen_text(PayoutPolicy(frozen=True, frozen_reason=reason)) if frozen else None


def payout_guard(payout: Payout) -> str | None:
    """Hold or cancel ``payout`` if it may not go ahead now; returns why, or None.

    The caller holds the payout's row lock in an open transaction; this takes
    the seller's money lock (the next step of the lock order) and writes the
    hold or cancellation in the caller's transaction.
    """
    sellers_money_lock([payout.seller_id])
    frozen = payout_frozen_reason(payout)
    if frozen is not None:
        _stop(payout, Status.HELD, "hold", frozen)
        return frozen
    payable = payable_now(
        seller_id=payout.seller_id,
        currency=payout.currency,
        reserve=payout.reserve_minor,
        excluding=payout,
    )
    if payout.amount_minor > payable:
        reason = (
            f"No longer covered: {format_amount(max(payable, 0), payout.currency)} is payable "
            f"now (refunds, disputes or fees since it was made); what is left is paid next run"
        )
        _stop(payout, Status.CANCELLED, "cancel", reason)
        return reason
    return None


def _stop(payout: Payout, status: str, action: str, reason: str) -> None:
    if status == Status.CANCELLED:
        payout.breakdown.all().delete()
    payout.status = status
    payout.failure_reason = reason[:255]
    payout.save(update_fields=["status", "failure_reason"])
    audit_record(target=payout, action=action, by=None, reason=reason, via="system")


def payouts_hold_for_freeze(*, policy: PayoutPolicy) -> int:
    """A frozen policy holds every open payout of the sellers it governs (the seller's
    own, or, for the platform default, every seller without an override of their own).
    Runs in the caller's transaction; returns how many were held.

    The open payouts are locked first, then the governed sellers' money locks (steps 5
    and 6 of ``payments.ledger.locks``). A payout run checks the freeze under the money lock
    (``payout_create``), so once it is held no payout the first query missed can be
    made; but one may have been made while it was awaited. Those are locked without
    waiting (their lock would come after the money lock, out of order): a payout
    locked by someone else is being sent, approved, released or marked paid, which
    checks the freeze under the money lock we hold, so it is held then.
    """
    if not policy.frozen:
        return 0
    if policy.seller_id is not None:
        governed = Q(seller_id=policy.seller_id)
        seller_ids = [policy.seller_id]
    else:
        overridden = Seller.objects.filter(payout_policy__isnull=False)
        governed = ~Q(seller__in=overridden)
        seller_ids = list(Seller.objects.exclude(pk__in=overridden).values_list("pk", flat=True))
    open_payouts = Payout.objects.select_for_update(no_key=True, of=("self",)).filter(
        governed, status__in=(Status.AWAITING_APPROVAL, Status.SCHEDULED)
    )
    locked = list(open_payouts.order_by("pk"))
    sellers_money_lock(seller_ids)
    made_meanwhile = (
        open_payouts.select_for_update(no_key=True, of=("self",), skip_locked=True)
        .exclude(pk__in=[payout.pk for payout in locked])
        .order_by("pk")
    )
    reason = frozen_text(policy)
    held = 0
    for payout in [*locked, *made_meanwhile]:
        _stop(payout, Status.HELD, "hold", reason)
        held += 1
    return held
