"""Admin report pages: platform revenue with a chart, and reconciliation with the processor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from payments.admin.base import ReadOnlyAdmin
from payments.models import ReconciliationReport, RevenueReport
from payments.periods import days_between
from payments.reports import RevenueRow, revenue_report

CHART_HEIGHT = 120


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


def _chart(rows: list[RevenueRow]) -> dict[str, list[dict[str, Any]]]:
    """Bar heights of net revenue per period, one chart per currency (scaled to its max)."""
    charts: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        charts.setdefault(row.currency, []).append({"row": row})
    for bars in charts.values():
        top = max((abs(bar["row"].net) for bar in bars), default=0) or 1
        for index, bar in enumerate(bars):
            bar["height"] = round(CHART_HEIGHT * abs(bar["row"].net) / top)
            bar["x"] = index * 28
            bar["y"] = CHART_HEIGHT - bar["height"]
            bar["negative"] = bar["row"].net < 0
    return charts


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
        if form.is_valid():
            since, until = days_between(
                form.cleaned_data.get("start"), form.cleaned_data.get("end")
            )
            rows = revenue_report(period=form.cleaned_data["period"], start=since, end=until)
        totals: dict[str, dict[str, int]] = {}
        for row in rows:
            total = totals.setdefault(
                row.currency,
                {
                    "sales": 0,
                    "refunds": 0,
                    "commission": 0,
                    "processor_fees": 0,
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
            "charts": _chart(rows),
            "chart_height": CHART_HEIGHT,
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
        from payments.processors.base import ProcessorError
        from payments.reconciliation import reconcile

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
