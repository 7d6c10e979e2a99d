"""Which payout policy applies to a seller: their own override, else the platform default."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Seller, User
from marketplace.errors import InvalidRequest, InvalidState
from payments.audit import audit_record
from payments.currencies import format_amount
from payments.models import AuditRecord, Payout, PayoutPolicy


def payout_policy_for(seller: Seller) -> PayoutPolicy:
    """The seller's own policy, else the platform default (made on first use)."""
    own = PayoutPolicy.objects.filter(seller=seller).first()
    return own if own is not None else default_payout_policy()


def default_payout_policy() -> PayoutPolicy:
    """The platform default policy; until an operator saves one, an unsaved one made
    from the settings (``PAYMENTS_HOLD_DAYS``, ``PAYMENTS_RELEASE_ON_DELIVERY``)."""
    return PayoutPolicy.objects.filter(seller=None).first() or PayoutPolicy(seller=None)


@dataclass
class PolicyBook:
    """Every policy, read once, for work over many sellers (a payout run, hold release)."""

    default: PayoutPolicy
    overrides: dict[int, PayoutPolicy]

    @classmethod
    def load(cls, seller_ids: Iterable[int] | None = None) -> PolicyBook:
        overrides = PayoutPolicy.objects.filter(seller__isnull=False)
        if seller_ids is not None:
            overrides = overrides.filter(seller_id__in=list(seller_ids))
        return cls(
            default=default_payout_policy(),
            overrides={policy.seller_id: policy for policy in overrides if policy.seller_id},
        )

    def for_seller(self, seller_id: int) -> PayoutPolicy:
        return self.overrides.get(seller_id, self.default)

    @property
    def shortest_hold_days(self) -> int:
        return min(p.hold_days for p in [self.default, *self.overrides.values()])


def frozen_policy(seller_id: int) -> PayoutPolicy | None:
    """The policy that freezes this seller's payouts (their own or the default), if any."""
    policy = PolicyBook.load([seller_id]).for_seller(seller_id)
    return policy if policy.frozen else None


def frozen_text(policy: PayoutPolicy) -> str:
    """What a frozen policy's payouts are told: the freeze and its reason."""
    return f"Payouts frozen: {policy.frozen_reason}"


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


def next_payout_date(policy: PayoutPolicy, now: datetime) -> datetime | None:
    """The next day the schedule pays, after today; None for manual-only or frozen payouts."""
    if policy.schedule == PayoutPolicy.Schedule.MANUAL or policy.frozen:
        return None
    for days in range(1, 62):
        candidate = now + timedelta(days=days)
        if payout_period(policy, candidate) is not None:
            return candidate
    return None


def release_due_at(
    policy: PayoutPolicy, *, paid_at: datetime, delivered_at: datetime | None
) -> datetime | None:
    """When earnings leave their hold: ``hold_days`` after payment or, per policy, once
    delivered (None while not delivered)."""
    if policy.release_on_delivery:
        return delivered_at
    return paid_at + timedelta(days=policy.hold_days)


def release_is_due(
    policy: PayoutPolicy, *, paid_at: datetime, delivered_at: datetime | None, now: datetime
) -> bool:
    due = release_due_at(policy, paid_at=paid_at, delivered_at=delivered_at)
    return due is not None and due <= now


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
    from payments.audit import audited_save
    from payments.payout_guard import payouts_hold_for_freeze

    with transaction.atomic():
        audited_save(instance=policy, by=by, reason=reason, via=via)
        return payouts_hold_for_freeze(policy=policy)


def policy_text(policy: PayoutPolicy, *, amounts: bool = True) -> str:
    """The policy in an operator's words: "weekly on Mondays, 7-day hold, 10% reserve for
    90 days, minimum $25.00" (without the minimum and approval amounts: ``amounts``
    False)."""
    Schedule = PayoutPolicy.Schedule
    if policy.schedule == Schedule.WEEKLY:
        parts = [f"weekly on {calendar.day_name[policy.weekday]}s"]
    elif policy.schedule == Schedule.MONTHLY:
        parts = [f"monthly on day {policy.month_day}"]
    elif policy.schedule == Schedule.MANUAL:
        parts = ["only when an operator runs payouts"]
    else:
        parts = ["daily"]
    if policy.method == PayoutPolicy.Method.MANUAL:
        parts.append("by bank transfer")
    if policy.release_on_delivery:
        parts.append("released on delivery")
    else:
        parts.append(f"{policy.hold_days}-day hold" if policy.hold_days else "no hold")
    if policy.reserve_bps:
        parts.append(f"{policy.reserve_percent:f}% reserve for {policy.reserve_days} days")
    else:
        parts.append("no reserve")
    if not amounts:
        return ", ".join(parts)
    parts.append(_amounts_text("minimum", policy.minimums, "no minimum"))
    if policy.approval_thresholds:
        parts.append(_amounts_text("approval above", policy.approval_thresholds, ""))
    return ", ".join(parts)


def _amounts_text(label: str, amounts: dict[str, int], none: str) -> str:
    if not amounts:
        return none
    return f"{label} " + ", ".join(
        format_amount(minor, currency) for currency, minor in sorted(amounts.items())
    )


@dataclass(frozen=True)
class PayoutTotal:
    """How many of a seller's payouts are in some states, and their total, in one currency."""

    currency: str
    count: int
    total_minor: int

    def __str__(self) -> str:
        noun = "payout" if self.count == 1 else "payouts"
        return f"{self.count} {noun} totalling {format_amount(self.total_minor, self.currency)}"


# What a freeze holds (``payouts_hold_for_freeze``), and what waits for an operator after.
FREEZE_HOLDS = (Payout.Status.AWAITING_APPROVAL, Payout.Status.SCHEDULED)


def seller_payout_totals(*, seller: Seller, statuses: Iterable[str]) -> list[PayoutTotal]:
    """The seller's payouts in ``statuses``, counted and summed per currency (one query)."""
    rows = (
        Payout.objects.filter(seller=seller, status__in=list(statuses))
        .values_list("currency")
        .annotate(count=Count("pk"), total=Sum("amount_minor"))
        .order_by("currency")
    )
    return [PayoutTotal(currency, int(count), int(total or 0)) for currency, count, total in rows]


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
