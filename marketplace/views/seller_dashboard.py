"""The seller's earnings dashboard: per currency, balances, this month, the next payout,
30 days of earnings as a chart, and the commission terms that apply."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from payments.balances import seller_balance, seller_currencies
from payments.earnings import commission_terms_for, earnings_by_day, paid_out_since
from payments.payouts import next_payout_for
from payments.periods import day_start

CHART_HEIGHT = 120
BAR_WIDTH = 16


def _chart(days):
    """Bar positions for a server-drawn SVG; the table under it has the figures."""
    top = max((abs(d.earned) for d in days), default=0) or 1
    bars = []
    for index, day in enumerate(days):
        height = round(CHART_HEIGHT * abs(day.earned) / top)
        bars.append(
            {
                "day": day,
                "x": index * (BAR_WIDTH + 4),
                "y": CHART_HEIGHT - height if day.earned >= 0 else CHART_HEIGHT,
                "height": height,
                "negative": day.earned < 0,
            }
        )
    return {"bars": bars, "width": len(days) * (BAR_WIDTH + 4)}


@seller_required
@require_GET
def dashboard(request):
    seller = request.seller
    month_start = day_start(timezone.localdate().replace(day=1))
    panels = []
    for currency in seller_currencies(seller):
        days = earnings_by_day(seller=seller, currency=currency, days=30)
        panels.append(
            {
                "currency": currency,
                "balance": seller_balance(seller=seller, currency=currency),
                "paid_this_month": paid_out_since(
                    seller=seller, currency=currency, since=month_start
                ),
                "earned_30_days": sum(d.earned for d in days),
                "next": next_payout_for(seller=seller, currency=currency),
                "days": days,
                "chart": _chart(days),
                "commission": commission_terms_for(seller=seller, currency=currency),
            }
        )
    return render(
        request,
        "marketplace/seller/dashboard.html",
        {"seller": seller, "panels": panels, "bar_width": BAR_WIDTH, "chart_height": CHART_HEIGHT},
    )
