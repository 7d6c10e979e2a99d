"""The operator console's home: what happened today and in the last 7 days, per
currency, and what waits for an operator now.

Every figure carries the admin changelist link that lists the rows it counts. The
link is built from the same lookups as the query (``_Lookups``), so the figure and
the list it links to cannot drift apart; a lookup the admin does not accept would
show as ``?e=1`` (tests/payments/test_operator_dashboard.py opens every link).

A fixed number of queries, whatever the number of rows or currencies: one grouped
query per model. Sections on models the operator may not view are left out (not
queried, not linked).

Reconciliation with the processor is not computed here: it asks the processor for
its balance transactions (pages of API calls with Stripe) and looks up each
difference, so its cost grows with the period's activity. The dashboard links to
the reconciliation page for the same 7 days instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db import models
from django.db.models import Count, Min, Q, Sum
from django.urls import reverse
from django.utils import timezone

from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from marketplace.models import DeferredTask, Order
from payments.models import (
    Dispute,
    Payout,
    ReconciliationReport,
    ReconciliationRun,
    Refund,
    RefundRequest,
    WebhookEvent,
)
from payments.reporting.periods import day_start

WEEK_DAYS = 7

_Lookups = dict[str, Any]
CanView = Callable[[type[models.Model]], bool]


def _everyone_sees_everything(model: type[models.Model]) -> bool:
    return True


@dataclass(frozen=True)
class Window:
    """``[since, until)``: whole days in the site's time zone."""

    label: str
    first_day: date
    last_day: date
    since: datetime
    until: datetime

    def lookups(self, field: str) -> _Lookups:
        return {f"{field}__gte": self.since, f"{field}__lt": self.until}


@dataclass(frozen=True)
class Figure:
    """A count of rows, their total in ``currency`` (minor units; 0 and "" when the
    rows are not money) and the admin changelist listing exactly those rows."""

    count: int
    url: str
    amount_minor: int = 0
    currency: str = ""
    oldest: datetime | None = None


@dataclass(frozen=True)
class PeriodFigures:
    """One currency in one window."""

    sales: Figure | None  # gross of the orders paid in the window
    commission: Figure | None  # the platform's part of those orders
    refunds: Figure | None  # refunds made in the window that succeeded
    payouts_failed: Figure | None  # payouts that failed in the window


@dataclass(frozen=True)
class CurrencyFigures:
    currency: str
    today: PeriodFigures
    last_7_days: PeriodFigures
    disputes_open: Figure | None
    payouts_awaiting_approval: Figure | None
    payouts_needing_attention: Figure | None  # automatic sending stopped


@dataclass(frozen=True)
class Backlog:
    """Queues that are not money in one currency."""

    refund_requests_waiting: Figure | None
    webhooks_waiting: Figure | None  # received, not processed yet
    webhooks_failed: Figure | None
    deferred_tasks: Figure | None  # refused by the broker, queued again every minute


@dataclass(frozen=True)
class OperatorDashboard:
    now: datetime
    today: Window
    last_7_days: Window
    currencies: list[CurrencyFigures]
    backlog: Backlog
    reconciliation_url: str | None  # the reconciliation page for the last 7 days
    last_reconciliation: ReconciliationRun | None = None  # the last one kept (beat's daily)
    last_reconciliation_url: str | None = None  # its page: the same period, run again


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def changelist_url(model: type[models.Model], lookups: _Lookups | None = None) -> str:
    """The model's admin changelist filtered by ``lookups`` (as a query string)."""
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    if not lookups:
        return url
    return f"{url}?{urlencode({name: _param(value) for name, value in lookups.items()})}"


def _window(label: str, first_day: date, last_day: date) -> Window:
    return Window(
        label=label,
        first_day=first_day,
        last_day=last_day,
        since=day_start(first_day),
        until=day_start(last_day + timedelta(days=1)),
    )


def _in(window: Window, field: str) -> Q:
    return Q(**window.lookups(field))


_Row = Mapping[str, Any]


def _by_currency(rows: Iterable[_Row]) -> dict[str, _Row]:
    return {row["currency"]: row for row in rows}


def _currency_order(currency: str) -> tuple[int, str]:
    known = currency in SUPPORTED_CURRENCIES
    return (SUPPORTED_CURRENCIES.index(currency) if known else len(SUPPORTED_CURRENCIES), currency)


class _Section:
    """Figures on one model: None when the operator may not view it, else a count and
    total read from its grouped row, linked to its changelist filtered by the lookups
    the query used."""

    def __init__(self, model: type[models.Model], visible: bool) -> None:
        self.model = model
        self.visible = visible

    def figure(
        self,
        lookups: _Lookups,
        row: _Row | None,
        count: str,
        amount: str | None = None,
        currency: str = "",
    ) -> Figure | None:
        if not self.visible:
            return None
        row = row or {}
        return Figure(
            count=row.get(count) or 0,
            url=changelist_url(self.model, lookups),
            amount_minor=(row.get(amount) or 0) if amount else 0,
            currency=currency,
        )


def operator_dashboard(
    *, now: datetime, can_view: CanView = _everyone_sees_everything
) -> OperatorDashboard:
    """Today's and the last 7 days' figures per currency, and the queues waiting for an
    operator at ``now``. ``can_view(model)`` says whether the operator may open that
    model's changelist; figures on the others are None."""
    today_date = timezone.localdate(now)
    today = _window("Today", today_date, today_date)
    week = _window("Last 7 days", today_date - timedelta(days=WEEK_DAYS - 1), today_date)
    windows = {"today": today, "week": week}

    # Orders paid in the window: their gross and the platform's commission.
    orders = _Section(Order, can_view(Order))
    order_rows: dict[str, _Row] = {}
    if orders.visible:
        order_rows = _by_currency(
            Order.objects.filter(_in(week, "paid_at"))
            .values("currency")
            .annotate(
                **{
                    aggregate: function(field, filter=_in(window, "paid_at"))
                    for key, window in windows.items()
                    for aggregate, function, field in (
                        (f"{key}_count", Count, "pk"),
                        (f"{key}_sales", Sum, "total_minor"),
                        (f"{key}_commission", Sum, "commission_minor"),
                    )
                }
            )
            .order_by()
        )

    # Refunds made in the window that went through.
    refunds = _Section(Refund, can_view(Refund))
    refund_base: _Lookups = {"status__exact": Refund.Status.SUCCEEDED}
    refund_rows: dict[str, _Row] = {}
    if refunds.visible:
        refund_rows = _by_currency(
            Refund.objects.filter(Q(**refund_base), _in(week, "created_at"))
            .values("currency")
            .annotate(
                **{
                    aggregate: function(field, filter=_in(window, "created_at"))
                    for key, window in windows.items()
                    for aggregate, function, field in (
                        (f"{key}_count", Count, "pk"),
                        (f"{key}_amount", Sum, "amount_minor"),
                    )
                }
            )
            .order_by()
        )

    # Payouts: failed in the window, waiting for approval, stopped for an operator.
    payouts = _Section(Payout, can_view(Payout))
    failed: _Lookups = {"status__exact": Payout.Status.FAILED}
    awaiting: _Lookups = {"status__exact": Payout.Status.AWAITING_APPROVAL}
    attention = ~Q(attention_reason="")
    attention_link: _Lookups = {"needs_attention": "yes"}  # NeedsAttentionFilter
    payout_rows: dict[str, _Row] = {}
    if payouts.visible:
        failed_in = {key: Q(**failed) & _in(window, "failed_at") for key, window in windows.items()}
        payout_rows = _by_currency(
            Payout.objects.filter(failed_in["week"] | Q(**awaiting) | attention)
            .values("currency")
            .annotate(
                today_failed_count=Count("pk", filter=failed_in["today"]),
                today_failed_amount=Sum("amount_minor", filter=failed_in["today"]),
                week_failed_count=Count("pk", filter=failed_in["week"]),
                week_failed_amount=Sum("amount_minor", filter=failed_in["week"]),
                awaiting_count=Count("pk", filter=Q(**awaiting)),
                awaiting_amount=Sum("amount_minor", filter=Q(**awaiting)),
                attention_count=Count("pk", filter=attention),
                attention_amount=Sum("amount_minor", filter=attention),
            )
            .order_by()
        )

    disputes = _Section(Dispute, can_view(Dispute))
    dispute_open: _Lookups = {"status__exact": Dispute.Status.OPEN}
    dispute_rows: dict[str, _Row] = {}
    if disputes.visible:
        dispute_rows = _by_currency(
            Dispute.objects.filter(**dispute_open)
            .values("currency")
            .annotate(count=Count("pk"), amount=Sum("amount_minor"))
            .order_by()
        )

    currencies = sorted(
        {
            currency
            for rows in (order_rows, refund_rows, payout_rows, dispute_rows)
            for currency, row in rows.items()
            if any(value for name, value in row.items() if name != "currency")
        },
        key=_currency_order,
    )

    def period(currency: str, key: str) -> PeriodFigures:
        window = windows[key]
        in_currency: _Lookups = {"currency__exact": currency}
        paid = {**in_currency, **window.lookups("paid_at")}
        order = order_rows.get(currency)
        return PeriodFigures(
            sales=orders.figure(paid, order, f"{key}_count", f"{key}_sales", currency),
            commission=orders.figure(paid, order, f"{key}_count", f"{key}_commission", currency),
            refunds=refunds.figure(
                {**refund_base, **in_currency, **window.lookups("created_at")},
                refund_rows.get(currency),
                f"{key}_count",
                f"{key}_amount",
                currency,
            ),
            payouts_failed=payouts.figure(
                {**failed, **in_currency, **window.lookups("failed_at")},
                payout_rows.get(currency),
                f"{key}_failed_count",
                f"{key}_failed_amount",
                currency,
            ),
        )

    per_currency = []
    for currency in currencies:
        in_currency = {"currency__exact": currency}
        payout_row = payout_rows.get(currency)
        per_currency.append(
            CurrencyFigures(
                currency=currency,
                today=period(currency, "today"),
                last_7_days=period(currency, "week"),
                disputes_open=disputes.figure(
                    {**dispute_open, **in_currency},
                    dispute_rows.get(currency),
                    "count",
                    "amount",
                    currency,
                ),
                payouts_awaiting_approval=payouts.figure(
                    {**awaiting, **in_currency},
                    payout_row,
                    "awaiting_count",
                    "awaiting_amount",
                    currency,
                ),
                payouts_needing_attention=payouts.figure(
                    {**attention_link, **in_currency},
                    payout_row,
                    "attention_count",
                    "attention_amount",
                    currency,
                ),
            )
        )

    may_reconcile = can_view(ReconciliationReport)
    last = ReconciliationRun.objects.first() if may_reconcile else None
    return OperatorDashboard(
        now=now,
        today=today,
        last_7_days=week,
        currencies=per_currency,
        backlog=_backlog(can_view),
        reconciliation_url=(
            changelist_url(
                ReconciliationReport,
                {"start": week.first_day.isoformat(), "end": week.last_day.isoformat()},
            )
            if may_reconcile
            else None
        ),
        last_reconciliation=last,
        last_reconciliation_url=(
            changelist_url(
                ReconciliationReport,
                {
                    "start": timezone.localdate(last.since).isoformat(),
                    "end": timezone.localdate(last.until).isoformat(),
                },
            )
            if last is not None
            else None
        ),
    )


def _backlog(can_view: CanView) -> Backlog:
    """Queues as they stand, each with its oldest row's time (one query per model)."""

    def queue(
        model: type[models.Model], since_field: str, figures: dict[str, _Lookups]
    ) -> dict[str, Figure] | None:
        """``figures``: name -> the lookups of the rows that figure counts."""
        if not can_view(model):
            return None
        wanted = {name: Q(**lookups) for name, lookups in figures.items()}
        any_wanted = Q()
        for condition in wanted.values():
            any_wanted |= condition
        found = model._default_manager.filter(any_wanted).aggregate(
            **{f"{name}_count": Count("pk", filter=c) for name, c in wanted.items()},
            **{f"{name}_oldest": Min(since_field, filter=c) for name, c in wanted.items()},
        )
        return {
            name: Figure(
                count=found[f"{name}_count"],
                url=changelist_url(model, lookups),
                oldest=found[f"{name}_oldest"],
            )
            for name, lookups in figures.items()
        }

    requests = queue(
        RefundRequest, "created_at", {"waiting": {"status__exact": RefundRequest.Status.REQUESTED}}
    )
    webhooks = queue(
        WebhookEvent,
        "received_at",
        {
            "waiting": {"status__exact": WebhookEvent.Status.RECEIVED},
            "failed": {"status__exact": WebhookEvent.Status.FAILED},
        },
    )
    deferred = queue(DeferredTask, "created_at", {"all": {}})
    return Backlog(
        refund_requests_waiting=requests["waiting"] if requests else None,
        webhooks_waiting=webhooks["waiting"] if webhooks else None,
        webhooks_failed=webhooks["failed"] if webhooks else None,
        deferred_tasks=deferred["all"] if deferred else None,
    )
