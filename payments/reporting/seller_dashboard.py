"""What the seller's earnings dashboard reads, per currency, in four statements whatever
the seller's history or number of currencies: their payout policies (one), the
commission rules that apply and their current plan (two), and everything the page shows
from the ledger, payouts and pending orders (one, below).

The page shows exact money, read when it is asked for: the accounts' running balances
(kept under a row lock by the posting service) and sums of entries, never a cached
copy. The rules stay where they are (``payments.reporting.earnings``: the series and the debt;
``payments.reporting.earnings_schedule``: the next payout's estimate); this module reads what
they need in one statement and hands it to them. ``seller_balances``,
``earnings_series``, ``seller_debt`` and ``next_payout_estimate`` read the same figures
one at a time for other pages; tests/marketplace/test_seller_dashboard_figures.py
proves both readings equal, and equal to sums computed from the entries. The sums
this statement makes that other modules make too (paid out: ``payments.ledger.balances``;
claimed: ``payments.payouts.planning.amounts_claimed``; the reserve's releases:
``payout_reserves``) are pinned to theirs by that test.

One statement is also one snapshot: under read committed, a sale committed while the
page is read cannot show in the balance and not in the next payout's estimate
(tests/marketplace/test_concurrency_seller_dashboard.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts.models import Seller
from marketplace.kernel.money import percentage
from payments.ledger.balances import SellerBalance
from payments.models import (
    CommissionRule,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    PayoutPolicy,
    Refund,
)
from payments.payouts.holds import RELEASABLE
from payments.payouts.policies import PolicyBook
from payments.reporting.earnings import (
    DEBT_KINDS,
    DEBT_REASONS_READ,
    EARNING_KINDS,
    SELLER_SIDE,
    Debt,
    EarningsSeries,
    commission_terms,
    debt_from,
    series_from_days,
    series_start,
)
from payments.reporting.earnings_schedule import (
    PayoutEstimate,
    first_run_day,
    payout_estimate,
    run_at,
)
from payments.reporting.periods import day_start

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


@dataclass(frozen=True)
class CurrencyDashboard:
    """Everything the dashboard shows about one currency."""

    currency: str
    balance: SellerBalance
    paid_this_month: int  # payouts paid since the first of the month, less returned ones
    series: EarningsSeries
    debt: Debt | None
    next: PayoutEstimate
    commission: CommissionRule | None


def _in(name: str, values: Iterable[str]) -> tuple[str, dict[str, str]]:
    """Placeholders for ``IN (...)`` over constant ``values``, and their parameters."""
    params = {f"{name}_{i}": str(value) for i, value in enumerate(values)}
    return ", ".join(f"%({key})s" for key in params), params


_SELLER_SIDE, _SELLER_SIDE_PARAMS = _in("side", SELLER_SIDE)
_EARNING, _EARNING_PARAMS = _in("earning", EARNING_KINDS)
_DEBT, _DEBT_PARAMS = _in("debt", DEBT_KINDS)
_RELEASABLE, _RELEASABLE_PARAMS = _in("releasable", RELEASABLE)
_OPEN, _OPEN_PARAMS = _in("open", Payout.OPEN)
CONSTANT_PARAMS: dict[str, Any] = {
    **_SELLER_SIDE_PARAMS,
    **_EARNING_PARAMS,
    **_DEBT_PARAMS,
    **_RELEASABLE_PARAMS,
    **_OPEN_PARAMS,
    "pending": Kind.PENDING.value,
    "available": Kind.AVAILABLE.value,
    "in_transit": Kind.IN_TRANSIT.value,
    "paid": TxnKind.PAYOUT_PAID.value,
    # A bank payout returned after it was paid is not paid out any more.
    "returned": TxnKind.PAYOUT_RETURNED.value,
    "hold_released": TxnKind.HOLD_RELEASED.value,
    "refund_pending": Refund.Status.PENDING.value,
    "reasons": DEBT_REASONS_READ,
}

# One row per fact, tagged by what it is, in the same columns:
#   (what, currency, label, at, at2, day, n1, n2, n3)
# - account: kind, -, -, -, running balance, paid out (in transit's row: payouts paid
#   less returned), of it since %(month)s;
# - day: -, -, -, the local day, net earnings that day (ledger's sign) from %(since)s;
# - debt (only where available is below zero, the account's balance above it): the
#   oldest entries that took money out of available and that no payout claimed, as
#   transaction kind, time, -, -, transaction id, entry id, the payout that paid the
#   sale (the one that claimed the hold release of the same order line);
# - released (only with a reserve window): hold releases into available since %(window)s;
# - held: the seller's paid, not yet released seller orders: -, paid at, delivered at,
#   -, what their lines hold on a pending account, the seller order's id;
# - claimed: open payouts, and the seller's part of pending refunds of released sales.
# Every entry read comes from an index on (account, kind, time) with the amount in
# it, or on the order line; the seller orders still held from a partial index
# (migration 0034): no read grows with the rest of the ledger, nor with the seller's
# released orders.
# Constant strings only (every value is a parameter); the local day's expression is
# the backend's own, filled in below.
_SQL = f"""
SELECT 'account', a.currency, a.kind, CAST(NULL AS TIMESTAMP), CAST(NULL AS TIMESTAMP),
  CAST(NULL AS DATE), a.balance_minor,
  CASE WHEN a.kind = %(in_transit)s THEN (
    SELECT SUM(e.amount_minor) FROM payments_ledgerentry e
    WHERE e.account_id = a.id AND e.transaction_kind IN (%(paid)s, %(returned)s)
  ) END,
  CASE WHEN a.kind = %(in_transit)s THEN (
    SELECT SUM(e.amount_minor) FROM payments_ledgerentry e
    WHERE e.account_id = a.id AND e.transaction_kind IN (%(paid)s, %(returned)s)
      AND e.created_at >= %(month)s
  ) END
FROM payments_ledgeraccount a
WHERE a.seller_id = %(seller)s
UNION ALL
SELECT 'day', a.currency, NULL, NULL, NULL, {{local_day}}, SUM(e.amount_minor), NULL, NULL
FROM payments_ledgeraccount a
JOIN payments_ledgerentry e ON e.account_id = a.id
WHERE a.seller_id = %(seller)s AND a.kind IN ({_SELLER_SIDE})
  AND e.transaction_kind IN ({_EARNING}) AND e.created_at >= %(since)s
GROUP BY 2, 6
UNION ALL
SELECT 'debt', d.currency, d.transaction_kind, d.created_at, NULL, NULL, d.transaction_id, d.id,
  (SELECT pe.payout_id FROM payments_payoutentry pe
   JOIN payments_ledgerentry r ON r.id = pe.entry_id
   WHERE r.order_line_id = d.order_line_id AND r.transaction_kind = %(hold_released)s
   ORDER BY pe.entry_id LIMIT 1)
FROM (
  SELECT a.currency, e.id, e.transaction_id, e.transaction_kind, e.order_line_id,
    e.created_at, ROW_NUMBER() OVER (PARTITION BY a.id ORDER BY e.created_at, e.id) AS n
  FROM payments_ledgeraccount a
  JOIN payments_ledgerentry e ON e.account_id = a.id
  WHERE a.seller_id = %(seller)s AND a.kind = %(available)s AND a.balance_minor > 0
    AND e.transaction_kind IN ({_DEBT}) AND e.amount_minor > 0
    AND NOT EXISTS (SELECT 1 FROM payments_payoutentry pe WHERE pe.entry_id = e.id)
) d
WHERE d.n <= %(reasons)s
UNION ALL
SELECT 'released', a.currency, NULL, NULL, NULL, NULL, SUM(e.amount_minor), NULL, NULL
FROM payments_ledgeraccount a
JOIN payments_ledgerentry e ON e.account_id = a.id
WHERE %(window)s IS NOT NULL AND a.seller_id = %(seller)s AND a.kind = %(available)s
  AND e.transaction_kind = %(hold_released)s AND e.created_at >= %(window)s
GROUP BY a.currency
UNION ALL
SELECT 'held', o.currency, NULL, o.paid_at, so.delivered_at, NULL,
  (SELECT SUM(e.amount_minor) FROM marketplace_orderline l
   JOIN payments_ledgerentry e ON e.order_line_id = l.id
   JOIN payments_ledgeraccount la ON la.id = e.account_id
   WHERE l.seller_order_id = so.id AND la.kind = %(pending)s), so.id, NULL
FROM marketplace_sellerorder so
JOIN marketplace_order o ON o.id = so.order_id
WHERE so.seller_id = %(seller)s AND so.released_at IS NULL AND o.paid_at IS NOT NULL
  AND so.status IN ({_RELEASABLE})
UNION ALL
SELECT 'claimed', p.currency, NULL, NULL, NULL, NULL, SUM(p.amount_minor), NULL, NULL
FROM payments_payout p
WHERE p.seller_id = %(seller)s AND p.status IN ({_OPEN})
GROUP BY p.currency
UNION ALL
SELECT 'claimed', r.currency, NULL, NULL, NULL, NULL, SUM(rl.seller_amount_minor), NULL, NULL
FROM payments_refundline rl
JOIN marketplace_orderline l ON l.id = rl.order_line_id
JOIN marketplace_sellerorder so ON so.id = l.seller_order_id
JOIN payments_refund r ON r.id = rl.refund_id
WHERE so.seller_id = %(seller)s AND so.released_at IS NOT NULL
  AND r.status = %(refund_pending)s
GROUP BY r.currency
"""  # noqa: S608 (placeholders for constant lists; every value is a parameter)


def _dashboard_sql() -> tuple[str, dict[str, Any]]:
    """The statement with the backend's expression for an entry's local day (in the
    site's time zone), and that expression's parameters."""
    expression, values = connection.ops.datetime_cast_date_sql(
        "e.created_at", (), timezone.get_current_timezone_name()
    )
    params = {f"tz_{i}": value for i, value in enumerate(values)}
    for key in params:
        expression = expression.replace("%s", f"%({key})s", 1)
    return _SQL.replace("{local_day}", expression), params


@dataclass
class _Read:
    """What the statement returned, per currency."""

    balances: dict[str, dict[str, int]]
    paid_out: dict[str, tuple[int, int]]  # (all, since the month started)
    by_day: dict[str, dict[date, int]]
    taken: dict[str, list[tuple[datetime, int, str, int | None, int]]]
    released: dict[str, int]
    held: dict[str, list[tuple[datetime | None, datetime | None, int | None]]]
    claimed: dict[str, int]


def _read(*, seller: Seller, since: datetime, month: datetime, window: datetime | None) -> _Read:
    sql, tz_params = _dashboard_sql()
    params = {
        **CONSTANT_PARAMS,
        **tz_params,
        "seller": seller.pk,
        "since": connection.ops.adapt_datetimefield_value(since),
        "month": connection.ops.adapt_datetimefield_value(month),
        "window": connection.ops.adapt_datetimefield_value(window),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    read = _Read({}, {}, defaultdict(dict), defaultdict(list), {}, defaultdict(list), {})
    for what, currency, label, at, at2, day, n1, n2, n3 in rows:
        if what == "account":
            read.balances.setdefault(currency, {})[label] = int(n1)
            if label == Kind.IN_TRANSIT:
                read.paid_out[currency] = (int(n2 or 0), int(n3 or 0))
        elif what == "day":
            read.by_day[currency][_date(day)] = int(n1 or 0)
        elif what == "debt":
            read.taken[currency].append(
                (_datetime(at), int(n2), label, int(n3) if n3 is not None else None, int(n1))
            )
        elif what == "released":
            read.released[currency] = int(n1 or 0)
        elif what == "held":
            held = int(n1) if n1 is not None else None
            read.held[currency].append((_datetime(at), _datetime_or_none(at2), held))
        elif what == "claimed":
            read.claimed[currency] = read.claimed.get(currency, 0) + int(n1 or 0)
    return read


def _policy_book(seller: Seller) -> PolicyBook:
    """``PolicyBook.load([seller.pk])`` in one query: the seller's own policy and the
    platform default (the first saved, else one made from the settings)."""
    found = list(
        PayoutPolicy.objects.filter(Q(seller=seller) | Q(seller__isnull=True)).order_by("pk")
    )
    default = next((p for p in found if p.seller_id is None), None) or PayoutPolicy(seller=None)
    return PolicyBook(
        default=default, overrides={p.seller_id: p for p in found if p.seller_id == seller.pk}
    )


def seller_dashboard_read(
    *, seller: Seller, now: datetime | None = None, days: int = 30, weeks: int = 52
) -> list[CurrencyDashboard]:
    """What the seller's dashboard shows, per currency (those the seller has accounts
    in and their default one, sorted), in four statements: their balances and what
    payouts paid them (all and this month), their net earnings per day for ``days``
    days and per week for ``weeks`` weeks, what they owe and why, their next payout's
    estimate and the commission terms that apply. The same rules as ``seller_balances``,
    ``earnings_series``, ``seller_debt``, ``next_payout_estimate`` and
    ``commission_terms_for``, on the same figures."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    book = _policy_book(seller)
    policy = book.for_seller(seller.pk)
    day = first_run_day(policy, now)
    moment = run_at(day) if day is not None else None
    window = (
        moment - timedelta(days=policy.reserve_days)
        if moment is not None and policy.reserve_bps
        else None
    )
    read = _read(
        seller=seller,
        since=day_start(series_start(today, days=days, weeks=weeks)),
        month=day_start(today.replace(day=1)),
        window=window,
    )
    currencies = sorted({seller.default_currency} | set(read.balances))
    rules = commission_terms(seller=seller, currencies=currencies)
    panels = []
    for currency in currencies:
        kinds = read.balances.get(currency, {})
        paid_out, paid_this_month = read.paid_out.get(currency, (0, 0))
        balance = SellerBalance(
            currency=currency,
            pending=-kinds.get(Kind.PENDING, 0),
            available=-kinds.get(Kind.AVAILABLE, 0),
            in_transit=-kinds.get(Kind.IN_TRANSIT, 0),
            paid_out=paid_out,
        )
        taken = sorted(read.taken.get(currency, []))[:DEBT_REASONS_READ]
        panels.append(
            CurrencyDashboard(
                currency=currency,
                balance=balance,
                paid_this_month=paid_this_month,
                series=series_from_days(
                    {d: -amount for d, amount in read.by_day.get(currency, {}).items()},
                    today=today,
                    days=days,
                    weeks=weeks,
                ),
                debt=debt_from(
                    currency=currency,
                    available=balance.available,
                    taken=[(kind, paid_by, txn) for _, _, kind, paid_by, txn in taken],
                ),
                next=payout_estimate(
                    policy=policy,
                    currency=currency,
                    now=now,
                    available=balance.available,
                    pending_orders=read.held.get(currency, []),
                    claimed=read.claimed.get(currency, 0),
                    reserve=_reserve(policy, -read.released.get(currency, 0)),
                ),
                commission=rules[currency],
            )
        )
    return panels


def _reserve(policy: PayoutPolicy, released: int) -> Callable[[int], int]:
    """The rolling reserve (as ``payout_reserves``): the policy's share of what was
    released into available in its window, and of what will be by the payout."""
    if not policy.reserve_bps:
        return lambda releasing: 0
    return lambda releasing: percentage(released + releasing, policy.reserve_bps)


# --- Values as the backend returns them in a raw statement ----------------------------
# PostgreSQL: dates and aware datetimes; SQLite: text (datetimes in UTC).


def _date(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = parse_date(value)
    assert parsed is not None, value
    return parsed


def _datetime(value: datetime | str) -> datetime:
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    assert parsed is not None, value
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _datetime_or_none(value: datetime | str | None) -> datetime | None:
    return None if value is None else _datetime(value)
