"""Which payout policy applies to a seller: their own override, else the platform default."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from payments.models import Payout, PayoutPolicy


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
