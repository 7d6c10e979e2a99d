"""When a sale's earnings reach the seller, and everything that happened to them since:
the day they become available, the payout that pays (or is expected to pay) them,
refunds before and after that payout and where they were taken from, disputes.

The story is read from the ledger (the seller's entries on the sale's lines, and the
payout entries that link them to payouts), not from the order's status: a sale paid
out in payout #2 and refunded afterwards says so, and says whether the refund was
taken back from payout #2's transfer (a ``Clawback``) or from a later payout.

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

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from marketplace.models import SellerOrder
from payments.models import (
    Clawback,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutPolicy,
    RefundLine,
)
from payments.payouts.holds import RELEASABLE
from payments.payouts.planning import amounts_claimed, payout_reserves
from payments.payouts.policies import PolicyBook, next_payout_date, payout_period, release_due_at
from payments.reporting.periods import day_start

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


@dataclass(frozen=True)
class LaterRefund:
    """A refund of the sale's earnings after they became available."""

    amount: int  # the seller's part, taken from their available balance
    taken_back: int = 0  # of it, reversed from the paying payout's transfer
    being_taken_back: int = 0  # of it, a reversal under way or waiting
    netted_by: Payout | None = None  # the later payout that netted the rest, if any


@dataclass(frozen=True)
class WhenPaid:
    """Where one seller order's earnings stand, and what happened to them."""

    state: str  # one of the STATE_* names below
    available_on: date | None = None  # known or expected day they become available
    payout_on: date | None = None  # expected payout day, while no payout holds them
    payout: Payout | None = None  # the payout that holds them
    no_payout_day: str = ""  # why no payout day can be given (manual schedule, frozen)
    currency: str = ""
    refunded_before: int = 0  # the seller's part of refunds before the hold ended
    later_refunds: tuple[LaterRefund, ...] = field(default_factory=tuple)
    disputed: int = 0  # held for an open dispute now
    lost: int = 0  # lost in disputes

    @property
    def text(self) -> str:
        """The whole story in one or two sentences, e.g. "Paid in payout #2 on Fri 4
        Dec 2026; $28.65 refunded after that, taken from your next payout." """
        parts = [_TEXT[self.state](self), *self._afterwards()]
        return "; ".join(part for part in parts if part) + "."

    @property
    def paid_on(self) -> date | None:
        """The day a paid payout reached (or reaches) the seller's bank."""
        if self.payout is None or self.payout.status != Payout.Status.PAID:
            return None
        if self.payout.arrival_on:
            return self.payout.arrival_on
        return timezone.localdate(self.payout.paid_at) if self.payout.paid_at else None

    def _money(self, amount: int) -> str:
        return format_amount(amount, self.currency) if self.currency else str(amount)

    def _afterwards(self) -> list[str]:
        said = []
        if self.refunded_before and self.state != STATE_NOTHING:
            said.append(f"{self._money(self.refunded_before)} refunded before payout")
        for refund in self.later_refunds:
            said.append(self._later(refund))
        if self.disputed and self.state != STATE_DISPUTED:
            said.append(f"disputed: {self._money(self.disputed)} held until it is decided")
        said_lost = self.state == STATE_NOTHING and not self.refunded_before
        if self.lost and not said_lost:
            said.append(f"{self._money(self.lost)} lost in a dispute")
        return said

    def _later(self, refund: LaterRefund) -> str:
        amount = self._money(refund.amount)
        if self.payout is None:
            return f"{amount} refunded after it became available: that part is not paid out"
        said = f"{amount} refunded after that, "
        rest = refund.amount - refund.taken_back - refund.being_taken_back
        where = []
        transfer = f"payout #{self.payout.pk}'s transfer"
        if refund.taken_back:
            whole = refund.taken_back == refund.amount
            where.append(
                f"taken back from {transfer}"
                if whole
                else f"{self._money(refund.taken_back)} taken back from {transfer}"
            )
        if refund.being_taken_back:
            where.append(f"{self._money(refund.being_taken_back)} being taken back from {transfer}")
        if rest > 0:
            netted = (
                f"taken from payout #{refund.netted_by.pk}"
                if refund.netted_by is not None
                else "taken from your next payout"
            )
            where.append(netted if not where else f"{self._money(rest)} {netted}")
        return said + ", ".join(where)


STATE_NOTHING = "nothing"  # refunded or cancelled before release: nothing to pay
STATE_ON_HOLD = "on_hold"  # pending until a known day
STATE_UNTIL_DELIVERED = "until_delivered"  # pending until the order is delivered
STATE_AVAILABLE = "available"  # released, waiting for a payout
STATE_IN_PAYOUT = "in_payout"  # a payout holds it
STATE_DISPUTED = "disputed"  # all of it is held for a dispute


def _day(value: date | None) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}" if value else ""


def _expected(when: WhenPaid) -> str:
    if when.payout_on:
        return f"expected in the payout of {_day(when.payout_on)}"
    return when.no_payout_day


def _in_payout(when: WhenPaid) -> str:
    payout = when.payout
    if payout is None:
        return ""
    if payout.status == Payout.Status.PAID:
        paid_on = when.paid_on
        return f"Paid in payout #{payout.pk}" + (f" on {_day(paid_on)}" if paid_on else "")
    if payout.status == Payout.Status.IN_TRANSIT:
        arrives = f", arriving {_day(payout.arrival_on)}" if payout.arrival_on else ""
        return f"In payout #{payout.pk}, on its way to your bank{arrives}"
    if payout.status == Payout.Status.TRANSFERRED:
        return f"In payout #{payout.pk}, in your payout account"
    return f"In payout #{payout.pk} ({payout.get_status_display().lower()})"


def _nothing(when: WhenPaid) -> str:
    if when.refunded_before:
        return "Refunded before payout: nothing to pay"
    if when.lost:
        return f"Lost in a dispute: {when._money(when.lost)} taken back, nothing to pay"
    return "Nothing to pay: the order was cancelled"


_TEXT: dict[str, Callable[[WhenPaid], str]] = {
    STATE_NOTHING: _nothing,
    STATE_ON_HOLD: lambda w: f"Waiting: available on {_day(w.available_on)}, {_expected(w)}",
    STATE_UNTIL_DELIVERED: lambda w: (
        "Waiting: available once delivered, then paid on your next payout day"
    ),
    STATE_AVAILABLE: lambda w: f"Available since {_day(w.available_on)}, {_expected(w)}",
    STATE_IN_PAYOUT: _in_payout,
    STATE_DISPUTED: lambda w: f"Disputed: {w._money(w.disputed)} held until it is decided",
}


@dataclass
class _Ledger:
    """What the ledger says about one seller order's earnings (seller's side: positive
    is owed to the seller)."""

    pending: int = 0  # still in the hold
    released: int = 0  # moved to available by the hold release
    payout: Payout | None = None  # the payout that claimed the release
    refunded_before: int = 0
    later: dict[int, tuple[int, Payout | None]] = field(default_factory=dict)  # refund id
    disputed: int = 0
    lost: int = 0


def when_paid(
    *, seller_orders: Sequence[SellerOrder], now: datetime | None = None
) -> dict[int, WhenPaid]:
    """For each of these (paid) seller orders of one or more sellers, keyed by seller
    order id: when its earnings become available, which payout pays them, and the
    refunds and disputes since. Reads the policies, the seller orders' ledger entries
    (with the payouts that claimed them) and the clawbacks of their refunds in a fixed
    number of queries (four); the seller orders must come with their order
    (``select_related("order")``)."""
    now = now or timezone.now()
    if not seller_orders:
        return {}
    book = PolicyBook.load({so.seller_id for so in seller_orders})
    ids = [so.pk for so in seller_orders]
    ledgers = _ledgers(ids)
    taken = _taken_back(ids)
    return {
        so.pk: _when(so, book.for_seller(so.seller_id), ledgers.get(so.pk, _Ledger()), taken, now)
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


def _ledgers(seller_order_ids: list[int]) -> dict[int, _Ledger]:
    """Per seller order, its entries on its seller's accounts, summed by what they did
    (one query, with the payout that claimed each entry)."""
    entries = (
        LedgerEntry.objects.filter(
            order_line__seller_order_id__in=seller_order_ids, account__seller__isnull=False
        )
        .select_related("account", "transaction", "payout_item__payout", "order_line")
        .order_by("pk")
    )
    ledgers: dict[int, _Ledger] = defaultdict(_Ledger)
    for entry in entries:
        assert entry.order_line is not None  # filtered above
        ledger = ledgers[entry.order_line.seller_order_id]
        kind, txn_kind, owed = entry.account.kind, entry.transaction_kind, -entry.amount_minor
        item = getattr(entry, "payout_item", None)
        payout = item.payout if item is not None else None
        if kind == Kind.PENDING:
            ledger.pending += owed
        if kind == Kind.DISPUTED:
            ledger.disputed += owed
        if txn_kind == TxnKind.DISPUTE_LOST and kind == Kind.DISPUTED:
            ledger.lost += -owed  # the hold, given up
        if kind == Kind.AVAILABLE and txn_kind == TxnKind.HOLD_RELEASED and owed > 0:
            ledger.released += owed
            ledger.payout = payout or ledger.payout
        if txn_kind in (TxnKind.REFUND, TxnKind.REFUND_REVERSED):
            if kind == Kind.PENDING:
                ledger.refunded_before += -owed
            elif kind == Kind.AVAILABLE:
                refund_id = int(entry.transaction.reference_id)
                amount, netted = ledger.later.get(refund_id, (0, None))
                ledger.later[refund_id] = (amount - owed, payout or netted)
    return ledgers


def _taken_back(seller_order_ids: list[int]) -> dict[tuple[int, int], Clawback]:
    """The clawbacks of the refunds of these seller orders, by (refund id, payout id)."""
    refunds = RefundLine.objects.filter(order_line__seller_order_id__in=seller_order_ids)
    found = Clawback.objects.filter(
        reason_type="refund", reason_id__in=refunds.values("refund_id")
    ).order_by("pk")
    return {(clawback.reason_id, clawback.payout_id): clawback for clawback in found}


def _later_refunds(
    ledger: _Ledger, taken: dict[tuple[int, int], Clawback]
) -> tuple[LaterRefund, ...]:
    later = []
    Status = Clawback.Status
    for refund_id, (amount, netted) in sorted(ledger.later.items()):
        if amount <= 0:
            continue
        clawback = taken.get((refund_id, ledger.payout.pk)) if ledger.payout else None
        back = being = 0
        if clawback is not None and clawback.status == Status.REVERSED:
            back = min(clawback.amount_minor, amount)
        elif clawback is not None and clawback.status == Status.IN_FLIGHT:
            being = min(clawback.amount_minor, amount)
        elif clawback is not None and clawback.status == Status.PENDING:
            being = min(clawback.wanted_minor, amount)
        later.append(LaterRefund(amount, back, being, netted))
    return tuple(later)


def _when(
    so: SellerOrder,
    policy: PayoutPolicy,
    ledger: _Ledger,
    taken: dict[tuple[int, int], Clawback],
    now: datetime,
) -> WhenPaid:
    story = WhenPaid(
        STATE_NOTHING,
        currency=so.order.currency,
        refunded_before=ledger.refunded_before,
        later_refunds=_later_refunds(ledger, taken),
        disputed=ledger.disputed,
        lost=ledger.lost,
    )
    if so.released_at is not None and ledger.released > 0:
        released_on = timezone.localdate(so.released_at)
        if ledger.payout is not None:
            return replace(
                story, state=STATE_IN_PAYOUT, available_on=released_on, payout=ledger.payout
            )
        return _waiting(STATE_AVAILABLE, released_on, policy, from_=now, story=story)
    if ledger.pending <= 0 or so.status == SellerOrder.Status.CANCELLED:
        return replace(story, state=STATE_DISPUTED if ledger.disputed > 0 else STATE_NOTHING)
    due = release_due_at(policy, paid_at=so.order.paid_at or now, delivered_at=so.delivered_at)
    if due is None:
        return replace(story, state=STATE_UNTIL_DELIVERED)
    due = max(due, now)
    return _waiting(STATE_ON_HOLD, timezone.localdate(due), policy, from_=due, story=story)


def _waiting(
    state: str,
    available_on: date,
    policy: PayoutPolicy,
    *,
    from_: datetime,
    story: WhenPaid | None = None,
) -> WhenPaid:
    """Earnings not in a payout yet: expected in the first payout run at or after
    ``from_`` on a day the seller's schedule pays, or why there is no such day."""
    base = replace(story or WhenPaid(state), state=state, available_on=available_on)
    day = first_run_day(policy, from_)
    if day is not None:
        return replace(base, payout_on=day)
    why = (
        "your payouts are paused; we will write to you"
        if policy.frozen
        else "paid when the team makes a payout for you"
    )
    return replace(base, no_payout_day=why)


def first_run_day(policy: PayoutPolicy, moment: datetime) -> date | None:
    """The day of the first scheduled payout run at or after ``moment`` that pays this
    policy (a run releases the holds due first, then pays)."""
    day = timezone.localdate(moment)
    if moment <= run_at(day) and not policy.frozen and payout_period(policy, run_at(day)):
        return day
    found = next_payout_date(policy, day_start(day))
    return timezone.localdate(found) if found is not None else None


def run_at(day: date) -> datetime:
    """When the scheduled payout run of ``day`` goes."""
    return day_start(day) + timedelta(hours=settings.PAYMENTS_PAYOUT_RUN_HOUR)


# --- The next payout: when, and about how much ---------------------------------------------------


@dataclass(frozen=True)
class PayoutEstimate:
    """The seller's next scheduled payout in one currency and about what it pays: what
    will be available by its run (available now, which a debt makes negative, plus
    the pending earnings whose hold ends before the run), less what open payouts and
    refunds in progress already claim and the rolling reserve."""

    currency: str
    day: date | None  # the payout day; None: no scheduled payout (manual, frozen)
    amount: int  # about what it pays (never below zero)
    available: int  # available now (negative: owed)
    releasing: int  # pending earnings that become available before the run
    pending: int  # all pending earnings
    claimed: int = 0  # claimed by open payouts and refunds in progress
    reserve: int = 0  # kept in the rolling reserve
    minimum: int = 0  # the policy's smallest payout
    no_payout_day: str = ""  # why there is no day

    @property
    def below_minimum(self) -> bool:
        return 0 < self.amount < self.minimum

    @property
    def explanation(self) -> str:
        """Where the estimate comes from, in words (empty when it is just what is
        available now)."""
        money = partial_money(self.currency)
        said = []
        if self.releasing:
            held = "" if self.releasing == self.pending else f" of the {money(self.pending)}"
            said.append(f"{money(self.releasing)}{held} pending becomes available by then")
        elif self.pending:
            said.append(f"the {money(self.pending)} pending is still in its hold then")
        if self.available < 0:
            said.append(f"less the {money(-self.available)} you owe")
        elif self.available and self.releasing:
            said.append(f"plus {money(self.available)} available now")
        if self.claimed:
            said.append(f"less {money(self.claimed)} for payouts and refunds under way")
        if self.reserve:
            said.append(f"less {money(self.reserve)} kept in your rolling reserve")
        if self.below_minimum:
            said.append(f"under the {money(self.minimum)} minimum, so it rolls over")
        return ", ".join(said)


def partial_money(currency: str) -> Callable[[int], str]:
    return lambda amount: format_amount(amount, currency)


def next_payout_estimate(
    *, seller: Seller, currency: str, available: int, now: datetime | None = None
) -> PayoutEstimate:
    """When the seller's schedule next pays and about how much, given what is
    ``available`` now (their balance, read by the caller). A fixed number of queries:
    the policies (two), the pending seller orders with what each still holds (one),
    what is claimed (one) and, with a rolling reserve, the reserve (one)."""
    now = now or timezone.now()
    book = PolicyBook.load([seller.pk])
    policy = book.for_seller(seller.pk)
    pending_orders = (
        SellerOrder.objects.filter(
            seller=seller,
            released_at__isnull=True,
            order__paid_at__isnull=False,
            order__currency=currency,
            status__in=RELEASABLE,
        )
        .annotate(
            held=Sum(
                "lines__ledger_entries__amount_minor",
                filter=Q(lines__ledger_entries__account__kind=Kind.PENDING),
            )
        )
        .values_list("order__paid_at", "delivered_at", "held")
        .order_by()
    )
    day = first_run_day(policy, now)
    moment = run_at(day) if day is not None else None

    def reserve(releasing: int) -> int:
        assert moment is not None
        return payout_reserves(
            book, [seller.pk], moment, also_released={(seller.pk, currency): releasing}
        ).get((seller.pk, currency), 0)

    return payout_estimate(
        policy=policy,
        currency=currency,
        now=now,
        available=available,
        pending_orders=list(pending_orders),
        claimed=amounts_claimed([seller.pk]).get((seller.pk, currency), 0),
        reserve=reserve,
    )


def payout_estimate(
    *,
    policy: PayoutPolicy,
    currency: str,
    now: datetime,
    available: int,
    pending_orders: Iterable[tuple[datetime | None, datetime | None, int | None]],
    claimed: int,
    reserve: Callable[[int], int],
) -> PayoutEstimate:
    """The rule of ``next_payout_estimate``, on what was read: the next payout day of
    ``policy`` from ``now``; the pending seller orders as (paid at, delivered at, what
    the pending account holds for them in the ledger's sign), of which those due by
    that day's run are releasing; the estimate is ``available`` plus what is releasing,
    less what is ``claimed`` and less ``reserve(releasing)``, the rolling reserve
    counting what is releasing as released (called only when there is a payout day),
    never below zero."""
    day = first_run_day(policy, now)
    moment = run_at(day) if day is not None else None
    pending = releasing = 0
    for paid_at, delivered_at, held in pending_orders:
        amount = -int(held or 0)
        pending += amount
        assert paid_at is not None  # only paid orders are pending
        due = release_due_at(policy, paid_at=paid_at, delivered_at=delivered_at)
        if moment is not None and due is not None and due <= moment:
            releasing += amount
    if moment is None:
        why = (
            "your payouts are paused; we will write to you"
            if policy.frozen
            else "paid when the team makes a payout for you"
        )
        return PayoutEstimate(currency, None, 0, available, 0, pending, claimed, no_payout_day=why)
    kept = reserve(releasing)
    amount = max(available + releasing - claimed - kept, 0)
    minimum = int((policy.minimums or {}).get(currency, 0))
    return PayoutEstimate(
        currency, day, amount, available, releasing, pending, claimed, kept, minimum
    )
