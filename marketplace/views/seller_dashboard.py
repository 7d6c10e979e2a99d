"""The seller's earnings dashboard: per currency, balances, this month, the next payout,
earnings per day (30 days) and per week (a year) as charts, and the commission terms
that apply."""

from datetime import date
from functools import lru_cache

from django.shortcuts import render
from django.utils import formats, timezone, translation
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from payments.balances import SellerBalance, seller_balances
from payments.currencies import format_amount
from payments.earnings import PeriodEarnings, commission_terms_for, earnings_series
from payments.payouts import next_payout_for
from payments.periods import day_start

CHART_HEIGHT = 120
BAR_WIDTH = 16
BAR_GAP = 4


def _chart(series: list[PeriodEarnings], currency: str, unit: str = "day") -> dict:
    """Bar positions for a server-drawn SVG; a table next to it has the figures.

    Bars stand on a baseline, up for earnings and down for a net loss (refunds
    larger than sales that period), scaled so the tallest of each fits. Every text
    the chart shows (each bar's title, the table's rows, the total and the highest)
    is formatted here, each figure once, rather than by tags and filters in the
    template (a year of weeks is a hundred of them)."""
    highest = max((p.earned for p in series), default=0)
    lowest = min((p.earned for p in series), default=0)
    span = (max(highest, 0) - min(lowest, 0)) or 1
    baseline = CHART_HEIGHT * max(highest, 0) / span
    language = translation.get_language()
    prefix = "Week of " if unit == "week" else ""
    bars = []
    rows = []
    for index, period in enumerate(series):
        height = CHART_HEIGHT * abs(period.earned) / span
        shown = format_amount(period.earned, currency)
        bars.append(
            {
                "x": index * (BAR_WIDTH + BAR_GAP),
                "y": round(baseline - height if period.earned >= 0 else baseline, 1),
                "height": round(height, 1),
                "negative": period.earned < 0,
                "title": f"{prefix}{_date(period.start, 'j M', language)}: {shown}",
            }
        )
        if period.earned:
            rows.append((_date(period.start, "D j M Y", language), shown))
    total = sum(p.earned for p in series)
    return {
        "bars": bars,
        "rows": rows,  # (period, amount) where anything was earned or lost
        "baseline": round(baseline, 1) if lowest < 0 else CHART_HEIGHT,
        "width": len(series) * (BAR_WIDTH + BAR_GAP),
        "total": total,
        "total_shown": format_amount(total, currency),
        "top_shown": format_amount(highest, currency),
        "since": _date(series[0].start, "j M Y", language) if series else "",
    }


@lru_cache(maxsize=2048)
def _date(day: date, format: str, language: str | None) -> str:
    """What ``{{ day|date:format }}`` shows in ``language``, the active language (every
    seller's charts show the same days)."""
    return formats.date_format(day, format)


@seller_required
@require_GET
def dashboard(request):
    seller = request.seller
    month_start = day_start(timezone.localdate().replace(day=1))
    # Currencies, balances and what was paid this month in one query.
    balances = seller_balances(seller=seller, paid_since=month_start)
    panels = []
    for currency in sorted({seller.default_currency} | set(balances)):
        nothing = SellerBalance(currency, pending=0, available=0, in_transit=0, paid_out=0)
        balance, paid_this_month = balances.get(currency, (nothing, 0))
        series = earnings_series(seller=seller, currency=currency, days=30, weeks=52)
        panels.append(
            {
                "currency": currency,
                "balance": balance,
                "paid_this_month": paid_this_month,
                "next": next_payout_for(seller=seller, currency=currency),
                "daily": _chart(series.daily, currency, "day"),
                "weekly": _chart(series.weekly, currency, "week"),
                "commission": commission_terms_for(seller=seller, currency=currency),
            }
        )
    return render(
        request,
        "marketplace/seller/dashboard.html",
        {"seller": seller, "panels": panels, "bar_width": BAR_WIDTH, "chart_height": CHART_HEIGHT},
    )
