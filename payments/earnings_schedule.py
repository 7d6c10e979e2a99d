"""When a sale's earnings reach the seller: the day they become available and the
payout that pays (or is expected to pay) them.

A seller order's share is held until its seller's policy releases it (``hold_days``
after payment, or on delivery), then waits in available for the next payout day of
the seller's schedule. Once a payout claims the released entries, that payout is
the answer; a failed or cancelled payout gives its entries back, so they show as
waiting again.

Expected payout days are estimates. The scheduled run goes at
``PAYMENTS_PAYOUT_RUN_HOUR`` (06:00 by default) and releases the holds that are due
before it pays, so money due before a payout day's run is paid that day, and money
due after it on the next payout day; a minimum payout amount, a reserve, an approval
or a freeze can move it to a later payout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from accounts.models import Seller
from marketplace.models import SellerOrder
from payments.models import LedgerAccount, LedgerTransaction, Payout, PayoutEntry, PayoutPolicy
from payments.periods import day_start
from payments.policies import PolicyBook, next_payout_date, payout_period, release_due_at


@dataclass(frozen=True)
class WhenPaid:
    """Where one seller order's earnings stand."""

    state: str  # one of the STATE_* names below
    available_on: date | None = None  # known or expected day they become available
    payout_on: date | None = None  # expected payout day, while no payout holds them
    payout: Payout | None = None  # the payout that holds them
    no_payout_day: str = ""  # why no payout day can be given (manual schedule, frozen)

    @property
    def text(self) -> str:
        return _TEXT[self.state](self)


STATE_NOTHING = "nothing"  # refunded or cancelled before release: nothing to pay
STATE_ON_HOLD = "on_hold"  # pending until a known day
STATE_UNTIL_DELIVERED = "until_delivered"  # pending until the order is delivered
STATE_AVAILABLE = "available"  # released, waiting for a payout
STATE_IN_PAYOUT = "in_payout"  # a payout holds it


def _day(value: date | None) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}" if value else ""


def _expected(when: WhenPaid) -> str:
    if when.payout_on:
        return f"expected in the payout of {_day(when.payout_on)}"
    return when.no_payout_day


_TEXT: dict[str, Callable[[WhenPaid], str]] = {
    STATE_NOTHING: lambda w: "Nothing to pay: the order was refunded or cancelled.",
    STATE_ON_HOLD: lambda w: f"Available on {_day(w.available_on)}, {_expected(w)}.",
    STATE_UNTIL_DELIVERED: lambda w: "Available once delivered, then paid on your next payout day.",
    STATE_AVAILABLE: lambda w: f"Available since {_day(w.available_on)}, {_expected(w)}.",
    STATE_IN_PAYOUT: lambda w: (
        f"Available since {_day(w.available_on)}, in payout #{w.payout.pk}"
        f" ({w.payout.get_status_display().lower()})."
        if w.payout
        else ""
    ),
}


def when_paid(
    *, seller_orders: Sequence[SellerOrder], now: datetime | None = None
) -> dict[int, WhenPaid]:
    """For each of these (paid) seller orders of one or more sellers, keyed by seller
    order id: when its earnings become available and which payout pays them. Reads
    the policies and the payouts in a fixed number of queries (three); the seller orders
    must come with their order (``select_related("order")``)."""
    now = now or timezone.now()
    if not seller_orders:
        return {}
    book = PolicyBook.load({so.seller_id for so in seller_orders})
    payouts = _payouts_holding([so.pk for so in seller_orders])
    return {
        so.pk: _when(so, book.for_seller(so.seller_id), payouts.get(so.pk), now)
        for so in seller_orders
    }


def when_sold_earnings_are_paid(
    *, seller: Seller, seller_order_ids: Iterable[int | None], now: datetime | None = None
) -> dict[int, WhenPaid]:
    """``when_paid`` for some of the seller's own seller orders, by id (others ignored)."""
    ids = {pk for pk in seller_order_ids if pk is not None}
    if not ids:
        return {}
    found = SellerOrder.objects.filter(seller=seller, pk__in=ids).select_related("order")
    return when_paid(seller_orders=list(found), now=now)


def _payouts_holding(seller_order_ids: list[int]) -> dict[int, Payout]:
    """The live payout that claimed each seller order's released earnings."""
    items = (
        PayoutEntry.objects.filter(
            entry__order_line__seller_order_id__in=seller_order_ids,
            entry__account__kind=LedgerAccount.Kind.AVAILABLE,
            entry__transaction_kind=LedgerTransaction.Kind.HOLD_RELEASED,
        )
        .annotate(seller_order_id=F("entry__order_line__seller_order_id"))
        .select_related("payout")
        .order_by("payout_id")
    )
    return {item.seller_order_id: item.payout for item in items}


def _when(so: SellerOrder, policy: PayoutPolicy, payout: Payout | None, now: datetime) -> WhenPaid:
    if so.status in (SellerOrder.Status.REFUNDED, SellerOrder.Status.CANCELLED):
        return WhenPaid(STATE_NOTHING)
    if so.released_at is not None:
        released_on = timezone.localdate(so.released_at)
        if payout is not None:
            return WhenPaid(STATE_IN_PAYOUT, released_on, payout=payout)
        return _waiting(STATE_AVAILABLE, released_on, policy, from_=now)
    due = release_due_at(policy, paid_at=so.order.paid_at or now, delivered_at=so.delivered_at)
    if due is None:
        return WhenPaid(STATE_UNTIL_DELIVERED)
    due = max(due, now)
    return _waiting(STATE_ON_HOLD, timezone.localdate(due), policy, from_=due)


def _waiting(state: str, available_on: date, policy: PayoutPolicy, *, from_: datetime) -> WhenPaid:
    """Earnings not in a payout yet: expected in the first payout run at or after
    ``from_`` on a day the seller's schedule pays, or why there is no such day."""
    day = _first_run_day(policy, from_)
    if day is not None:
        return WhenPaid(state, available_on, payout_on=day)
    why = (
        "your payouts are paused; we will write to you"
        if policy.frozen
        else "paid when the team makes a payout for you"
    )
    return WhenPaid(state, available_on, no_payout_day=why)


def _first_run_day(policy: PayoutPolicy, moment: datetime) -> date | None:
    """The day of the first scheduled payout run at or after ``moment`` that pays this
    policy (a run releases the holds due first, then pays)."""
    day = timezone.localdate(moment)
    run_at = day_start(day) + timedelta(hours=settings.PAYMENTS_PAYOUT_RUN_HOUR)
    if moment <= run_at and not policy.frozen and payout_period(policy, run_at) is not None:
        return day
    found = next_payout_date(policy, day_start(day))
    return timezone.localdate(found) if found is not None else None
