"""What a seller's earnings dashboard reads: balances, this month, the daily earnings
series, and the commission terms that apply to them (a fixed number of queries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from accounts.models import Seller
from payments.models import CommissionRule, LedgerAccount, LedgerEntry, LedgerTransaction
from payments.periods import day_start

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
SELLER_SIDE = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)


@dataclass(frozen=True)
class DayEarnings:
    day: date
    earned: int  # the seller's share of sales, less refunds and fees charged that day


def earnings_by_day(*, seller: Seller, currency: str, days: int = 30) -> list[DayEarnings]:
    """The seller's net earnings per day for the last ``days`` days, oldest first, with
    a row for every day (zero where nothing happened). One grouped query."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = day_start(first)
    rows = dict(
        LedgerEntry.objects.filter(
            account__seller=seller,
            account__currency=currency,
            account__kind=Kind.PENDING,
            created_at__gte=since,
            transaction__kind__in=(TxnKind.PAYMENT_CAPTURED, TxnKind.REFUND, TxnKind.PROCESSOR_FEE),
        )
        .annotate(day=TruncDay("created_at"))
        .values("day")
        .annotate(total=Sum("amount_minor"))
        .values_list("day", "total")
    )
    by_day = {
        (key.date() if isinstance(key, datetime) else key): -int(total or 0)
        for key, total in rows.items()
    }
    return [
        DayEarnings(first + timedelta(days=offset), by_day.get(first + timedelta(days=offset), 0))
        for offset in range(days)
    ]


def paid_out_since(*, seller: Seller, currency: str, since: datetime) -> int:
    """What reached the seller's bank since ``since`` (payouts paid)."""
    total = LedgerEntry.objects.filter(
        account__seller=seller,
        account__currency=currency,
        account__kind=Kind.IN_TRANSIT,
        transaction__kind=TxnKind.PAYOUT_PAID,
        created_at__gte=since,
    ).aggregate(total=Sum("amount_minor"))["total"]
    return int(total or 0)


def commission_terms_for(*, seller: Seller, currency: str) -> CommissionRule | None:
    """The rule for the seller's products unless a category or product rule says
    otherwise: the seller's own rule, else the platform default."""
    now = timezone.now()
    rules = CommissionRule.objects.filter(
        Q(active_from__lte=now),
        Q(active_until__isnull=True) | Q(active_until__gt=now),
        Q(currency="") | Q(currency=currency),
        Q(scope=CommissionRule.Scope.SELLER, seller=seller) | Q(scope=CommissionRule.Scope.DEFAULT),
    ).order_by("-scope", "-active_from", "-pk")  # "seller" sorts after "default"
    return rules.first()
