"""Which payout policy applies to a seller: their own override, else the platform default."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import Seller, User
from payments.models import PayoutPolicy


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
    from django.db import transaction

    from payments.audit import audited_save
    from payments.payout_guard import payouts_hold_for_freeze

    with transaction.atomic():
        audited_save(instance=policy, by=by, reason=reason, via=via)
        payouts_hold_for_freeze(policy=policy)
    return policy
