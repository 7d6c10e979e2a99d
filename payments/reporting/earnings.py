"""A seller's earnings: per day and per week, what the seller owes and why, and the
commission terms that apply to them, each read in a fixed number of queries, and the
rules that make them from what was read (``series_from_days``, ``debt_from``), which
the dashboard's one-statement read (``payments.reporting.seller_dashboard``) shares."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from payments.models import (
    CommissionRule,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PayoutEntry,
    SellerPlanChoice,
)
from payments.reporting.periods import day_start

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
SELLER_SIDE = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)
# What changes what a seller has earned (moves between their own accounts, such as a
# hold release, a payout or a dispute opened or won, do not).
EARNING_KINDS = (
    TxnKind.PAYMENT_CAPTURED,
    TxnKind.PROCESSOR_FEE,
    TxnKind.REFUND,
    TxnKind.DISPUTE_LOST,
    TxnKind.ADJUSTMENT,
)


@dataclass(frozen=True)
class PeriodEarnings:
    start: date  # the day, or the Monday the week starts on
    earned: int  # the seller's share of sales, less refunds and fees charged in the period


@dataclass(frozen=True)
class EarningsSeries:
    daily: list[PeriodEarnings]  # the last ``days`` days, oldest first
    weekly: list[PeriodEarnings]  # the last ``weeks`` weeks (Monday to Sunday), this one too


def earnings_series(
    *, seller: Seller, currency: str, days: int = 30, weeks: int = 52
) -> EarningsSeries:
    """The seller's net earnings per day and per week, with a row for every period (zero
    where nothing happened), from one query grouped by day in the site's time zone."""
    today = timezone.localdate()
    by_day = _earned_per_day(
        seller=seller, currency=currency, since=series_start(today, days=days, weeks=weeks)
    )
    return series_from_days(by_day, today=today, days=days, weeks=weeks)


def series_start(today: date, *, days: int, weeks: int) -> date:
    """The first day the series of ``days`` days and ``weeks`` weeks up to ``today`` need."""
    first_day = today - timedelta(days=days - 1)
    first_monday = today - timedelta(days=today.weekday(), weeks=weeks - 1)
    return min(first_day, first_monday)


def series_from_days(
    by_day: dict[date, int], *, today: date, days: int, weeks: int
) -> EarningsSeries:
    """The series from net earnings per local day (days with nothing may be missing):
    the last ``days`` days, and the last ``weeks`` weeks (Monday to Sunday, this one
    too), each week the sum of its days."""
    first_day = today - timedelta(days=days - 1)
    first_monday = today - timedelta(days=today.weekday(), weeks=weeks - 1)
    by_week: dict[date, int] = defaultdict(int)
    for day, earned in by_day.items():
        by_week[day - timedelta(days=day.weekday())] += earned
    return EarningsSeries(
        daily=[
            PeriodEarnings(day, by_day.get(day, 0))
            for day in (first_day + timedelta(days=offset) for offset in range(days))
        ],
        weekly=[
            PeriodEarnings(monday, by_week.get(monday, 0))
            for monday in (first_monday + timedelta(weeks=offset) for offset in range(weeks))
        ],
    )


def _earned_per_day(*, seller: Seller, currency: str, since: date) -> dict[date, int]:
    """Net earnings (the seller's share of sales, less fees, refunds and lost disputes,
    whichever of their accounts each came out of: a refund after the hold comes out
    of available) per day in the site's time zone, from ``since``."""
    rows = (
        LedgerEntry.objects.filter(
            account__seller=seller,
            account__currency=currency,
            account__kind__in=SELLER_SIDE,
            created_at__gte=day_start(since),
            transaction_kind__in=EARNING_KINDS,
        )
        # The local date (a cast, cheaper per row than truncating to a local midnight).
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount_minor"))
        .values_list("day", "total")
    )
    return {
        (key.date() if isinstance(key, datetime) else key): -int(total or 0) for key, total in rows
    }


def paid_out_since(*, seller: Seller, currency: str, since: datetime) -> int:
    """What reached the seller's bank since ``since`` (payouts paid)."""
    total = LedgerEntry.objects.filter(
        account__seller=seller,
        account__currency=currency,
        account__kind=Kind.IN_TRANSIT,
        transaction_kind=TxnKind.PAYOUT_PAID,
        created_at__gte=since,
    ).aggregate(total=Sum("amount_minor"))["total"]
    return int(total or 0)


def commission_terms_for(*, seller: Seller, currency: str) -> CommissionRule | None:
    """The rule for the seller's products unless a category or product rule says
    otherwise: the seller's own rule, else the platform default."""
    return commission_terms(seller=seller, currencies=[currency])[currency]


def commission_terms(
    *, seller: Seller, currencies: Iterable[str]
) -> dict[str, CommissionRule | None]:
    """``commission_terms_for`` for each of ``currencies``, from two queries: per currency,
    the seller's own rule if they have one (negotiated terms beat a plan), else their
    plan's commission when their current plan has one, in every currency (shown as an
    unsaved rule named after the plan, the precedence of ``payments.revenue.commission``), else
    the platform default (the latest first)."""

    wanted = sorted(set(currencies))
    now = timezone.now()
    rules = list(
        CommissionRule.objects.filter(
            Q(active_from__lte=now),
            Q(active_until__isnull=True) | Q(active_until__gt=now),
            Q(currency="") | Q(currency__in=wanted),
            Q(scope=CommissionRule.Scope.SELLER, seller=seller)
            | Q(scope=CommissionRule.Scope.DEFAULT),
        ).order_by("-scope", "-active_from", "-pk")  # "seller" sorts after "default"
    )
    choice = (
        SellerPlanChoice.objects.select_related("plan")
        .filter(seller=seller, ended_at__isnull=True, plan__commission_bps__isnull=False)
        .first()
    )
    terms: dict[str, CommissionRule | None] = {}
    for currency in wanted:
        rule = next((rule for rule in rules if rule.currency in ("", currency)), None)
        plan = choice.plan if choice is not None else None
        on_plan = plan is not None  # a plan's commission applies in every currency
        if on_plan and (rule is None or rule.scope != CommissionRule.Scope.SELLER):
            assert plan is not None and plan.commission_bps is not None
            rule = CommissionRule(
                name=f"{plan.name} plan",
                scope=CommissionRule.Scope.SELLER,
                percentage_bps=plan.commission_bps,
                currency=currency,
            )
        terms[currency] = rule
    return terms


# --- What a seller owes ---------------------------------------------------------------------------

# Why money came out of available (a debt once it is below zero), in words.
_DEBT_REASONS: dict[str, str] = {
    TxnKind.REFUND: "a refund",
    TxnKind.DISPUTE_OPENED: "a dispute",
    TxnKind.DISPUTE_LOST: "a lost dispute",
    TxnKind.PROCESSOR_FEE: "a processor fee",
    TxnKind.ADJUSTMENT: "an adjustment",
    TxnKind.PLAN_FEE: "your plan's monthly fee",
    TxnKind.LISTING_FEE: "listing fees",
}
# A payout's own moves are not why a seller owes.
_PAYOUT_KINDS = (
    TxnKind.PAYOUT_SENT,
    TxnKind.PAYOUT_PAID,
    TxnKind.PAYOUT_FAILED,
    TxnKind.PAYOUT_RETURNED,
)
# Every other kind: what can take money out of available (listed rather than excluded,
# so that a read of them uses the (account, kind, time) index).
DEBT_KINDS = tuple(kind for kind in TxnKind if kind not in _PAYOUT_KINDS)
DEBT_REASONS_READ = 20  # the oldest entries read to say why a seller owes


@dataclass(frozen=True)
class Debt:
    """What a seller owes the platform in one currency (their available balance below
    zero) and why: refunds or disputes after the payouts that paid the sales, or fees
    charged from the balance (a plan's monthly fee, listing fees)."""

    currency: str
    amount: int  # positive: what they owe
    reasons: tuple[str, ...]  # "a refund after payout #2", oldest first

    @property
    def text(self) -> str:
        owed = format_amount(self.amount, self.currency)
        why = f" from {_and(self.reasons)}" if self.reasons else ""
        return (
            f"You owe {owed}{why}; it will be taken from your next sales before anything is "
            "paid out."
        )


def _and(items: tuple[str, ...]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def seller_debt(*, seller: Seller, currency: str, available: int) -> Debt | None:
    """What the seller owes, given their ``available`` balance (read by the caller), and
    why: the money taken out of available that no payout has netted yet, each with the
    payout that had paid its sale. One query, run whatever the balance, so a page's
    query count does not depend on it; None when nothing is owed."""
    paid_by = PayoutEntry.objects.filter(
        entry__order_line=OuterRef("order_line"),
        entry__transaction_kind=TxnKind.HOLD_RELEASED,
    ).values("payout_id")[:1]
    taken = (
        LedgerEntry.objects.filter(
            account__seller=seller,
            account__currency=currency,
            account__kind=Kind.AVAILABLE,
            amount_minor__gt=0,
            payout_item__isnull=True,
        )
        .exclude(transaction_kind__in=_PAYOUT_KINDS)
        .annotate(paid_by=Subquery(paid_by))
        .order_by("created_at", "pk")
        .values_list("transaction_kind", "paid_by", "transaction_id")[:DEBT_REASONS_READ]
    )
    return debt_from(currency=currency, available=available, taken=list(taken))


def debt_from(
    *, currency: str, available: int, taken: Iterable[tuple[str, int | None, int]]
) -> Debt | None:
    """The debt of an ``available`` balance below zero, explained by ``taken``: the
    oldest entries (up to ``DEBT_REASONS_READ``) that took money out of available and
    that no payout has netted, as (transaction kind, the payout that paid the sale or
    None, transaction id), oldest first. None when nothing is owed."""
    if available >= 0:
        return None
    reasons: list[str] = []
    seen: set[int] = set()
    for kind, payout_id, txn_id in taken:
        if txn_id in seen:
            continue
        seen.add(txn_id)
        reason = _DEBT_REASONS.get(kind, "an adjustment")
        reason += f" after payout #{payout_id}" if payout_id else ""
        if reason not in reasons:
            reasons.append(reason)
    return Debt(currency, -available, tuple(reasons))
