"""The seller's earnings dashboard: per currency, balances, what they owe and why, this
month, the next payout and about what it pays, earnings per day (30 days) and per week
(a year) as charts, and the commission terms that apply."""

from datetime import date
from functools import lru_cache

from django.shortcuts import render
from django.utils import formats, translation
from django.utils.html import escape, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from marketplace.kernel.currencies import format_amount
from payments.reporting.earnings import PeriodEarnings
from payments.reporting.seller_dashboard import seller_dashboard_read

# The chart's drawing, in SVG user units: the plot is PLOT_WIDTH by PLOT_HEIGHT, with
# room on the left for the amounts of the vertical axis, above for the bars' labels
# and below for the periods.
PLOT_LEFT = 72
PLOT_TOP = 22
PLOT_WIDTH = 600
PLOT_HEIGHT = 140
PLOT_BOTTOM = 40  # a loss's label under its bar, then the periods
PLOT_RIGHT = 36  # half a label's width: the latest bar's label stays inside
CHART_WIDTH = PLOT_LEFT + PLOT_WIDTH + PLOT_RIGHT
CHART_HEIGHT = PLOT_TOP + PLOT_HEIGHT + PLOT_BOTTOM
LABEL_ALL_BARS_UP_TO = 8  # with more bars than that, only the highest and lowest say their value
X_LABELS = 6  # about how many periods the horizontal axis names


def _nice(amount: int) -> int:
    """The smallest round figure at or above ``amount`` (in minor units: 1, 1.2, 1.5, 2,
    2.5, 3, 4, 5, 6 or 8 times a power of ten): where an axis ends."""
    if amount <= 0:
        return 0
    power = 1
    while power * 10 <= amount:
        power *= 10
    return next(
        candidate
        for candidate in (m * power // 10 for m in (10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100))
        if candidate >= amount
    )


def _chart(series: list[PeriodEarnings], currency: str, unit: str = "day") -> dict:
    """A server-drawn SVG bar chart of one series, with a table of its figures.

    The vertical axis runs from the largest loss (if any) up to the largest gain,
    rounded out to round figures, with a zero line between: gains stand on it, losses
    (refunds larger than sales that period) hang below it, both scaled alike by their
    size. Every bar has a title (its period and amount); with few bars, each bar says
    its value, else the highest and the lowest do. The horizontal axis names about six
    periods. With nothing earned, the axes stay, with a note across them.

    Every text is formatted here, each figure once, rather than by tags and filters in
    the template (a year of weeks is a hundred of them)."""
    language = translation.get_language()
    highest = max((p.earned for p in series), default=0)
    lowest = min((p.earned for p in series), default=0)
    top, bottom = _nice(max(highest, 0)), _nice(max(-lowest, 0))
    # A side with a little money keeps a fifth of the larger side's room, so that the
    # zero line's amount and that side's end (and a bar's label) never overlap.
    if bottom and bottom < top // 5:
        bottom = _nice(top // 5)
    if top and top < bottom // 5:
        top = _nice(bottom // 5)
    span = (top + bottom) or 1
    empty = not any(p.earned for p in series)
    zero_y = PLOT_TOP + (PLOT_HEIGHT * top / span if not empty else PLOT_HEIGHT)
    step = PLOT_WIDTH / max(len(series), 1)
    bar_width = max(round(step * 0.7, 1), 1)
    prefix = "Week of " if unit == "week" else ""
    nonzero = [p for p in series if p.earned]
    say_all = len(nonzero) <= LABEL_ALL_BARS_UP_TO
    top_bar = max(nonzero, key=lambda p: p.earned, default=None)
    bottom_bar = min(nonzero, key=lambda p: p.earned, default=None)
    bars, rows = [], []
    for index, period in enumerate(series):
        height = PLOT_HEIGHT * abs(period.earned) / span
        shown = format_amount(period.earned, currency)
        negative = period.earned < 0
        y = zero_y if negative else zero_y - height
        labelled = period.earned and (
            say_all or period is top_bar or (period is bottom_bar and negative)
        )
        x = PLOT_LEFT + index * step + (step - bar_width) / 2
        bars.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "width": bar_width,
                "height": round(height, 1),
                "negative": negative,
                "title": f"{prefix}{_date(period.start, 'j M', language)}: {shown}",
                "label": shown if labelled else "",
                "label_x": round(x + bar_width / 2, 1),
                "label_y": round(y + height + 13 if negative else y - 5, 1),
            }
        )
        if period.earned:
            rows.append((_date(period.start, "D j M Y", language), shown))
    ticks = [(PLOT_TOP, format_amount(top, currency))] if top else []
    ticks.append((round(zero_y, 1), format_amount(0, currency)))
    if bottom:
        ticks.append((PLOT_TOP + PLOT_HEIGHT, format_amount(-bottom, currency)))
    every = max(round(len(series) / X_LABELS), 1)
    x_labels = [
        (
            round(PLOT_LEFT + index * step + step / 2, 1),
            _date(series[index].start, "j M", language),
        )
        for index in range(len(series) - 1, -1, -every)  # counted back from the latest
    ]
    total = sum(p.earned for p in series)
    return {
        "bars": bars,
        "bars_svg": _bars_svg(bars),
        "rows": rows,  # (period, amount) where anything was earned or lost
        "rows_html": format_html_join("", '<tr><td>{}</td><td class="num">{}</td></tr>', rows),
        "empty": empty,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "plot_left": PLOT_LEFT,
        "plot_right": PLOT_LEFT + PLOT_WIDTH,
        "plot_top": PLOT_TOP,
        "plot_bottom": PLOT_TOP + PLOT_HEIGHT,
        "plot_middle": PLOT_TOP + PLOT_HEIGHT / 2,
        "plot_center": PLOT_LEFT + PLOT_WIDTH / 2,
        "x_label_y": PLOT_TOP + PLOT_HEIGHT + 33,
        "zero_y": round(zero_y, 1),
        "baseline": round(zero_y, 1),
        "y_ticks": ticks,
        "x_labels": x_labels,
        "total": total,
        "total_shown": format_amount(total, currency),
        "top_shown": format_amount(highest, currency),
        "bottom_shown": format_amount(lowest, currency),
        "periods_with_money": len(nonzero),
        "since": _date(series[0].start, "j M Y", language) if series else "",
        "until": _date(series[-1].start, "j M Y", language) if series else "",
    }


def _bars_svg(bars: list[dict]) -> SafeString:
    """The bars (those with a height) as SVG, each with its title and, if it has one, its
    label. Made here rather than by a template loop: a year of weeks is a hundred bars
    of eight values each, and the template would resolve and escape each one. The
    coordinates are numbers made above; the title and the label are escaped."""
    svg = []
    for bar in bars:
        if not bar["height"]:
            continue
        kind = "bar-negative" if bar["negative"] else "bar"
        svg.append(
            f'<rect x="{bar["x"]}" y="{bar["y"]}" width="{bar["width"]}" '
            f'height="{bar["height"]}" class="{kind}"><title>{escape(bar["title"])}</title></rect>'
        )
        if bar["label"]:
            svg.append(
                f'<text x="{bar["label_x"]}" y="{bar["label_y"]}" class="bar-label" '
                f'aria-hidden="true">{escape(bar["label"])}</text>'
            )
    return mark_safe("\n".join(svg))  # noqa: S308 (numbers, and escaped texts)


@lru_cache(maxsize=2048)
def _date(day: date, format: str, language: str | None) -> str:
    """What ``{{ day|date:format }}`` shows in ``language``, the active language (every
    seller's charts show the same days)."""
    return formats.date_format(day, format)


@seller_required
@require_GET
def dashboard(request):
    seller = request.seller
    panels = [
        {
            "currency": read.currency,
            "balance": read.balance,
            "paid_this_month": read.paid_this_month,
            "debt": read.debt,
            "next": read.next,
            "daily": _chart(read.series.daily, read.currency, "day"),
            "weekly": _chart(read.series.weekly, read.currency, "week"),
            "commission": read.commission,
        }
        for read in seller_dashboard_read(seller=seller, days=30, weeks=52)
    ]
    return render(
        request,
        "marketplace/seller/dashboard.html",
        {"seller": seller, "panels": panels},
    )
