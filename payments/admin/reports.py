"""Admin report pages: platform revenue with a chart, and reconciliation with the processor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from marketplace.kernel.currencies import format_amount
from payments.admin.base import ReadOnlyAdmin
from payments.models import ReconciliationReport, RevenueReport
from payments.processors.base import ProcessorError
from payments.reporting.periods import days_between
from payments.reporting.reconciliation import reconcile
from payments.reporting.revenue import Period, RevenueRow, revenue_report


class RevenueFilterForm(forms.Form):
    period = forms.ChoiceField(
        choices=[("day", "Day"), ("week", "Week"), ("month", "Month")], initial="day"
    )
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Included.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("The start must not be after the end.")
        return data


# The net revenue chart (server-drawn SVG; styles in static/css/admin.css): one column
# per period of the range asked for, also those in which no money moved, so the axis
# keeps the range's shape however little history there is. Positive nets rise from the
# zero axis, negative ones hang below it, both scaled to their magnitude on one scale.
PLOT_HEIGHT = 160  # px between the highest and the lowest value
SLOT = 30  # px per period
BAR_WIDTH = 20
MIN_SLOTS = 12  # the axis is at least this wide, even for one period
CHAR_WIDTH = 7  # px per character of an 11px label (a little more than a digit)
PERIOD_LABELS = 30  # px under the plot for the two lines of a period's label
GAP = 4  # px between a bar's end and its label
TICK_CLEARANCE = 14  # px between two labels of the value axis
FIT_WIDTH = 1200  # px: a chart up to this wide may shrink to fit (to about 3/4 of it)


@dataclass(frozen=True)
class ChartBar:
    period: date
    net: int | None  # None: no money moved in the period
    label: str  # the net, formatted in its currency ("" when None)
    new_group: bool  # the first period of a month (a year for months): label it
    x: int  # the slot's centre
    y: int  # the bar's top
    height: int
    label_y: int  # where the (vertical) value label starts, away from the bar

    @property
    def negative(self) -> bool:
        return self.net is not None and self.net < 0

    @property
    def bar_x(self) -> int:
        return self.x - BAR_WIDTH // 2


@dataclass(frozen=True)
class ChartTick:
    y: int
    label: str


@dataclass(frozen=True)
class Chart:
    currency: str
    period: Period
    bars: list[ChartBar]
    ticks: list[ChartTick]  # the highest and lowest values, and zero
    width: int
    height: int
    left: int  # where the plot starts (the ticks' labels are left of it)
    zero_y: int
    periods_y: int  # the first line of the periods' labels
    highest: ChartBar | None
    lowest: ChartBar | None
    empty_periods: int
    bar_width: int = BAR_WIDTH

    @property
    def fits(self) -> bool:
        """Narrow enough to shrink into a wide screen's column with legible labels (a
        wider one scrolls sideways at its own size)."""
        return self.width <= FIT_WIDTH

    @property
    def date_format(self) -> str:
        """How a period is named in words (Django's ``date`` filter)."""
        return "F Y" if self.period == "month" else "j M Y"


def _period_starts(period: Period, first: date, last: date) -> list[date]:
    """Every period from the one holding ``first`` to the one holding ``last``."""
    if period == "week":
        first -= timedelta(days=first.weekday())
    elif period == "month":
        first = first.replace(day=1)
    starts = []
    day = first
    while day <= last:
        starts.append(day)
        if period == "day":
            day += timedelta(days=1)
        elif period == "week":
            day += timedelta(days=7)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def _label_width(label: str) -> int:
    return len(label) * CHAR_WIDTH


def _chart(currency: str, rows: list[RevenueRow], period: Period, first: date, last: date) -> Chart:
    """Net revenue per period in one currency, laid out in pixels for the template."""
    nets = {row.period: row.net for row in rows}
    starts = _period_starts(period, min([first, *nets]), max([last, *nets]))
    values = [nets.get(start) for start in starts]
    known = [value for value in values if value is not None]
    high, low = max([0, *known]), min([0, *known])
    span = (high - low) or 1
    labels = [format_amount(value, currency) if value is not None else "" for value in values]
    ticks = {value: format_amount(value, currency) for value in {high, low, 0}}
    label_room = max(map(_label_width, labels), default=0) + 2 * GAP
    top = label_room
    plot_bottom = top + PLOT_HEIGHT
    # Zero sits as far below the top as the highest value is above zero; with no
    # money at all, at the bottom.
    zero_y = top + round(PLOT_HEIGHT * high / span) if high or low else plot_bottom
    below = label_room if low < 0 else GAP
    left = max(map(_label_width, ticks.values())) + 3 * GAP
    bars = []
    for index, (start, value, label) in enumerate(zip(starts, values, labels, strict=True)):
        size = round(PLOT_HEIGHT * abs(value) / span) if value else 0
        size = max(size, 1) if value else size  # a cent is still seen
        negative = value is not None and value < 0
        previous = starts[index - 1] if index else None
        bars.append(
            ChartBar(
                period=start,
                net=value,
                label=label,
                new_group=previous is None
                or (
                    previous.year != start.year
                    if period == "month"
                    else previous.month != start.month
                ),
                x=left + index * SLOT + SLOT // 2,
                y=zero_y if negative else zero_y - size,
                height=size,
                label_y=zero_y + size + GAP if negative else zero_y - size - GAP,
            )
        )
    # Zero, and the highest and lowest values unless one would overlap zero's label.
    tick_marks = []
    for value in sorted(ticks, reverse=True):
        offset = round(PLOT_HEIGHT * value / span)
        if value == 0 or abs(offset) >= TICK_CLEARANCE:
            tick_marks.append(ChartTick(y=zero_y - offset, label=ticks[value]))
    with_money = [bar for bar in bars if bar.net is not None]
    return Chart(
        currency=currency,
        period=period,
        bars=bars,
        ticks=tick_marks,
        width=left + max(len(bars), MIN_SLOTS) * SLOT + GAP,
        height=plot_bottom + below + PERIOD_LABELS,
        left=left,
        zero_y=zero_y,
        periods_y=plot_bottom + below + 12,
        highest=max(with_money, key=lambda bar: bar.net or 0, default=None),
        lowest=min(with_money, key=lambda bar: bar.net or 0, default=None),
        empty_periods=len(bars) - len(with_money),
    )


def revenue_charts(
    rows: list[RevenueRow], *, period: Period, first: date | None, last: date | None
) -> list[Chart]:
    """One chart per currency, all over the same periods: from ``first`` to ``last``, or
    where left open, from the first to the last period any currency has."""
    if not rows:
        return []
    first = first or min(row.period for row in rows)
    last = last or max(row.period for row in rows)
    by_currency: dict[str, list[RevenueRow]] = {}
    for row in rows:
        by_currency.setdefault(row.currency, []).append(row)
    return [
        _chart(currency, currency_rows, period, first, last)
        for currency, currency_rows in by_currency.items()
    ]


@admin.register(RevenueReport)
class RevenueReportAdmin(ReadOnlyAdmin):
    """Commission, refunds, processor fees and net revenue from the ledger."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        today = timezone.localdate()
        form = RevenueFilterForm(
            request.GET or {"period": "day", "start": today - timedelta(days=30), "end": today}
        )
        rows: list[RevenueRow] = []
        charts: list[Chart] = []
        if form.is_valid():
            period: Period = form.cleaned_data["period"]
            first, last = form.cleaned_data.get("start"), form.cleaned_data.get("end")
            since, until = days_between(first, last)
            rows = revenue_report(period=period, start=since, end=until)
            charts = revenue_charts(rows, period=period, first=first, last=last)
        totals: dict[str, dict[str, int]] = {}
        for row in rows:
            total = totals.setdefault(
                row.currency,
                {
                    "sales": 0,
                    "refunds": 0,
                    "commission": 0,
                    "processor_fees": 0,
                    "plan_fees": 0,
                    "listing_fees": 0,
                    "service_fees": 0,
                    "payouts": 0,
                    "net": 0,
                },
            )
            for name in total:
                total[name] += getattr(row, name)
        context = {
            **self.admin_site.each_context(request),
            "title": "Revenue report",
            "opts": self.model._meta,
            "form": form,
            "rows": rows,
            "totals": totals,
            "charts": charts,
        }
        return TemplateResponse(request, "admin/payments/revenuereport/report.html", context)


class ReconciliationForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Included.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end"):
            if data["start"] > data["end"]:
                raise forms.ValidationError("The start must not be after the end.")
            if (data["end"] - data["start"]).days > 31:
                raise forms.ValidationError("Reconcile at most 31 days at a time.")
        return data


@admin.register(ReconciliationReport)
class ReconciliationReportAdmin(ReadOnlyAdmin):
    """Our ledger's cash at the processor against its balance transactions."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:

        today = timezone.localdate()
        form = ReconciliationForm(request.GET or {"start": today, "end": today})
        report, error = None, ""
        if form.is_valid():
            since, until = days_between(form.cleaned_data["start"], form.cleaned_data["end"])
            assert since is not None and until is not None  # both are required
            try:
                report = reconcile(since=since, until=until)
            except ProcessorError as exc:
                error = f"The processor did not answer: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation with the processor",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "error": error,
        }
        return TemplateResponse(request, "admin/payments/reconciliation.html", context)
