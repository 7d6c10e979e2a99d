"""Saving a payout policy and freezing a seller: a freeze holds every open payout
the policy governs, in the same transaction (``payouts_hold_for_freeze``), and is
recorded on the policy and the seller. Which policy applies, and what it says, is
``payments.payouts.policies``."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Seller, User
from marketplace.kernel.errors import InvalidRequest, InvalidState
from payments.ledger.audit import audit_record, audited_save
from payments.models import AuditRecord, PayoutPolicy
from payments.payouts.guard import payouts_hold_for_freeze
from payments.payouts.policies import default_payout_policy


def payout_policy_save(
    *, policy: PayoutPolicy, by: User | None = None, reason: str = "", via: str = "code"
) -> PayoutPolicy:
    """Validate and save a policy, recording who changed what and why: one per seller
    and one default; amounts per real currency in whole minor units; days in range;
    a freeze needs a reason. Freezing holds every open payout the policy governs,
    in the same transaction (``payouts_hold_for_freeze``)."""
    _policy_save_and_hold(policy=policy, by=by, reason=reason, via=via)
    return policy


def _policy_save_and_hold(*, policy: PayoutPolicy, by: User | None, reason: str, via: str) -> int:
    """``payout_policy_save``'s work; returns how many open payouts the save held."""
    with transaction.atomic():
        audited_save(instance=policy, by=by, reason=reason, via=via)
        return payouts_hold_for_freeze(policy=policy)


@dataclass(frozen=True)
class FreezeOutcome:
    """What ``seller_freeze`` or ``seller_unfreeze`` did (``changed`` False: nothing)."""

    policy: PayoutPolicy
    changed: bool
    message: str
    payouts_held: int = 0


class _PolicyMadeMeanwhile(Exception):
    """Another transaction gave the seller their own policy while this one made one."""


def seller_freeze(
    *, seller: Seller, by: User | None, reason: str, via: str = AuditRecord.Via.CODE
) -> FreezeOutcome:
    """Stop every payout to the seller, with a reason.

    The seller's own policy is frozen (made from the platform default first, if they
    follow it) and saved by ``payout_policy_save``: the change is recorded and every
    open payout of theirs is held in the same transaction. The freeze is recorded on
    the seller too. A seller already frozen (by their own policy or the default's)
    stays as they are: nothing is written, and the outcome says so.
    """
    return _seller_freeze_set(seller=seller, frozen=True, by=by, reason=reason, via=via)


def seller_unfreeze(
    *, seller: Seller, by: User | None, reason: str, via: str = AuditRecord.Via.CODE
) -> FreezeOutcome:
    """Let payouts to the seller go again, with a reason.

    Payouts the freeze held stay held: an operator releases each one (``payout_release``)
    after looking at it. A seller who is not frozen stays as they are. A seller frozen by
    the platform default (they have no policy of their own) is refused: the default is
    unfrozen on its own page, for every seller at once.
    """
    return _seller_freeze_set(seller=seller, frozen=False, by=by, reason=reason, via=via)


def _seller_freeze_set(
    *, seller: Seller, frozen: bool, by: User | None, reason: str, via: str
) -> FreezeOutcome:
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("Give a reason: it is kept in the seller's history.")
    try:
        return _seller_freeze_set_once(seller, frozen, by, reason[:255], via)
    except _PolicyMadeMeanwhile:
        # The other transaction's policy is committed now: lock it and decide again.
        return _seller_freeze_set_once(seller, frozen, by, reason[:255], via)


def _seller_freeze_set_once(
    seller: Seller, frozen: bool, by: User | None, reason: str, via: str
) -> FreezeOutcome:
    verb = "freeze" if frozen else "unfreeze"
    with transaction.atomic():
        # The policy's row lock first (``payout_policy_save`` takes it again, then the
        # payouts' and the seller's money lock): two freezes of one seller queue here.
        own = PayoutPolicy.objects.select_for_update().filter(seller=seller).first()
        policy = own if own is not None else default_payout_policy()
        if policy.frozen == frozen:
            return FreezeOutcome(policy, False, _unchanged_text(seller, policy, own is None))
        if own is None and not frozen:
            raise InvalidState(
                f"{seller}'s payouts are frozen by the platform default policy "
                f"({policy.frozen_reason}), which every seller without a policy of their "
                "own follows: unfreeze the default on its payout policy page."
            )
        if own is None:
            policy = _own_copy(policy, seller)
        policy.frozen = frozen
        policy.frozen_reason = reason if frozen else ""
        try:
            with transaction.atomic():
                held = _policy_save_and_hold(policy=policy, by=by, reason=reason, via=via)
        except IntegrityError as exc:
            if own is None:
                raise _PolicyMadeMeanwhile from exc
            raise
        except ValidationError as exc:
            if own is None and "seller" in getattr(exc, "error_dict", {}):
                raise _PolicyMadeMeanwhile from exc
            raise InvalidRequest("; ".join(exc.messages)) from exc
        audit_record(
            target=seller,
            action=verb,
            by=by,
            reason=reason,
            via=via,
            changes={"frozen": [not frozen, frozen]},
        )
    if frozen:
        message = f"{seller}'s payouts are frozen; {held} open payout(s) held."
    else:
        message = (
            f"{seller}'s payouts are unfrozen. Payouts held by the freeze stay held: "
            "release them on the payout list."
        )
    return FreezeOutcome(policy, True, message, held)


def _own_copy(default: PayoutPolicy, seller: Seller) -> PayoutPolicy:
    """A policy of the seller's own with every setting of the default."""
    values = {
        field.attname: getattr(default, field.attname)
        for field in PayoutPolicy._meta.concrete_fields
        if not field.primary_key and field.name != "seller"
    }
    values["minimums"] = dict(default.minimums)
    values["approval_thresholds"] = dict(default.approval_thresholds)
    return PayoutPolicy(seller=seller, **values)


def _unchanged_text(seller: Seller, policy: PayoutPolicy, by_default: bool) -> str:
    if not policy.frozen:
        return f"{seller}'s payouts are not frozen; nothing was changed."
    source = " by the platform default policy" if by_default else ""
    return (
        f"{seller}'s payouts are already frozen{source} ({policy.frozen_reason}); "
        "nothing was changed."
    )
