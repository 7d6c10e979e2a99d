"""Every pair of money operations on one seller, at once, on PostgreSQL.

Ten operations change what a seller is owed or paid: a capture, a refund, a
dispute opened and one closed, a hold release, a payout run, a payout sent, a
payout approved, a manual payout marked paid, and a freeze. Each service takes
its row locks in the order of ``payments.ledger.locks``, so no two of them can wait on
each other in a circle. This module proves it from the outside: for every
unordered pair (each operation with itself too), both start together behind a
barrier on their own connections, on one rich starting state (``Scene``).

What may reach a caller is a service's refusal (an ``ApplicationError``, such as
``PayoutStopped``), and only where the other operation explains it
(``MAY_REFUSE``); never a deadlock, a serialization failure, an integrity error
or anything else. Background work that retries a lock conflict by itself
(``payments.ledger.retries``) must not have met one either. Afterwards every money
invariant holds (``assert_invariants``), and what each operation promises
given the other (``assert_outcomes``).

Each pair runs ``ROUNDS`` times on a fresh scene; the second thread of a pair of
one operation with itself takes another variant from round 1 on (a won and a
lost close, a full and a partial refund, two disputes of one payment, a manual
run next to a scheduled one), so each round races something different.

Amounts are minor units of USD; the commission is 10 %.
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import Seller, User
from accounts.services import operator_grant
from marketplace.kernel import task_queue
from marketplace.kernel.errors import ApplicationError
from marketplace.models import Order, OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.captures import order_payment_captured
from payments.collection.checkout import payment_start, payment_succeeded
from payments.collection.disputes import dispute_closed, dispute_opened
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import (
    AuditRecord,
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LocalTransfer,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    Refund,
    RefundLine,
)
from payments.payouts.controls import payout_approve, payout_mark_paid
from payments.payouts.freezes import payout_policy_save
from payments.payouts.holds import holds_release_due, seller_order_hold_release
from payments.payouts.planning import PlannedPayout, amounts_claimed, payout_create
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.money_helpers import enable_payouts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 3
VARIANTS = 3
Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status


# --- The starting state ----------------------------------------------------------------


@dataclass
class Scene:
    """One seller's money in every state an operation acts on (and a second seller
    sharing some of the orders, so that their money locks are taken together).

    The seller (``S``, 10 % commission) has, all in USD:

    - ``released``: a paid sale (S 100.00, other 50.00), hold released;
    - ``disputed``: a card-paid sale (S 100.00, other 50.00), released, then disputed
      in full (``dispute_id``, open): S's 90.00 is held in ``disputed``;
    - ``card_paid``: a card-paid sale (S 100.00, other 50.00), released: the one the
      refunds and the disputes opened act on (its ``payment_id``);
    - a paid sale of 250.00, released;
    - ``scheduled``: a processor payout of 180.00, ``awaiting_approval`` one of
      90.00, ``manual`` a bank-transfer payout of 90.00, as a run makes them;
    - ``unreleased``: a paid sale (S 100.00, other 50.00) still inside its hold;
    - ``awaiting``: an order (S 100.00, other 50.00) waiting for its payment.

    So S's available balance is 405.00, of which the open payouts claim 360.00: a
    run pays the other 45.00. A refund or dispute of all of S's line of
    ``card_paid`` takes 90.00 of it: then the open payouts are no longer all
    covered, and the first of them checked afterwards is cancelled.
    """

    tag: str
    now: datetime
    seller: Seller
    other: Seller
    operator: User
    released: Order
    disputed: Order
    dispute_id: str
    card_paid: Order
    payment_id: str
    unreleased: Order
    awaiting: Order
    scheduled: Payout
    awaiting_approval: Payout
    manual: Payout

    @property
    def sellers(self) -> tuple[Seller, Seller]:
        return self.seller, self.other


LOCAL = LocalProcessor()


def _order(lines: list[tuple[Seller, int]]) -> Order:
    cart = [
        CartItem(ProductFactory(seller=seller, price_minor=price, stock=1).pk, 1)
        for seller, price in lines
    ]
    return place_order(customer=UserFactory(), cart_items=cart)


def _captured(lines: list[tuple[Seller, int]]) -> Order:
    order = _order(lines)
    order_payment_captured(order=order)
    return order


def _paid_by_card(lines: list[tuple[Seller, int]]) -> tuple[Order, str]:
    """Paid with the local processor's card that succeeds; its event is handled here
    directly (``payment_succeeded``, what the webhook calls) rather than delivered."""
    order = _order(lines)
    attempt = payment_start(order=order)
    LOCAL.payment_confirm(payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order, attempt.processor_payment_id


def _release(order: Order) -> None:
    for seller_order in order.seller_orders.order_by("pk"):
        seller_order_hold_release(seller_order=seller_order)


def _payout(seller: Seller, amount: int, period: str, **fields: Any) -> Payout:
    """A payout as a run makes it (``payout_create``), of ``amount`` of what is available."""
    fields.setdefault("status", Status.SCHEDULED)
    plan = PlannedPayout(seller, "USD", amount, period, **fields)
    account = LedgerAccount.objects.get(seller=seller, kind=Kind.AVAILABLE, currency="USD")
    payout = payout_create(plan, account=account, run=None, by=None)
    assert payout is not None and payout.amount_minor == amount
    return payout


@transaction.atomic  # one commit for the whole scene: the services nest inside it
def build_scene(tag: str, operator: User) -> Scene:
    now = timezone.now()
    seller = enable_payouts(
        SellerFactory(bank_account_holder="Acme Ltd", bank_account_number="GB33BUKB20201555555555")
    )
    other = enable_payouts(SellerFactory())
    payout_policy_save(policy=PayoutPolicy(seller=seller), reason="scene")
    both = [(seller, 10000), (other, 5000)]
    released = _captured(both)
    disputed, disputed_payment = _paid_by_card(both)
    card_paid, payment_id = _paid_by_card(both)
    more = _captured([(seller, 25000)])
    for order in (released, disputed, card_paid, more):
        _release(order)
    dispute_id = f"dp-{tag}-open"
    dispute_opened(
        processor_name="local",
        processor_dispute_id=dispute_id,
        payment_id=disputed_payment,
        amount_minor=disputed.total_minor,
    )
    scene = Scene(
        tag=tag,
        now=now,
        seller=seller,
        other=other,
        operator=operator,
        released=released,
        disputed=disputed,
        dispute_id=dispute_id,
        card_paid=card_paid,
        payment_id=payment_id,
        unreleased=_captured(both),
        awaiting=_order(both),
        scheduled=_payout(seller, 18000, "scene-scheduled"),
        awaiting_approval=_payout(
            seller,
            9000,
            "scene-approval",
            status=Status.AWAITING_APPROVAL,
        ),
        manual=_payout(seller, 9000, "scene-manual", method=PayoutPolicy.Method.MANUAL),
    )
    assert _owed(seller, Kind.AVAILABLE) == 40500
    assert _owed(seller, Kind.DISPUTED) == 9000
    return scene


# --- The operations --------------------------------------------------------------------


def op_capture(s: Scene, v: int) -> object:
    return order_payment_captured(order=s.awaiting, processor_fee_minor=(0, 320, 450)[v])


def op_refund(s: Scene, v: int) -> object:
    """Everything left of the card-paid sale, 60.00 of it, or the seller's line of it."""
    if v == 2:
        line = s.card_paid.lines.get(seller_order__seller=s.seller)
        refund = refund_create(order=s.card_paid, order_line=line)
    else:
        refund = refund_create(order=s.card_paid, amount_minor=(None, 6000)[v])
    return refund_mark_succeeded(refund=refund)


def op_dispute_open(s: Scene, v: int) -> object:
    """The card-paid sale disputed in full, in part, or in full as a second dispute."""
    amount, name = ((s.card_paid.total_minor, "a"), (5000, "a"), (s.card_paid.total_minor, "b"))[v]
    return dispute_opened(
        processor_name="local",
        processor_dispute_id=f"dp-{s.tag}-{name}",
        payment_id=s.payment_id,
        amount_minor=amount,
    )


def op_dispute_close(s: Scene, v: int) -> object:
    return dispute_closed(processor_name="local", processor_dispute_id=s.dispute_id, won=v != 1)


def op_hold_release(s: Scene, v: int) -> object:
    if v == 1:  # the hourly job, a day after every hold is over
        return holds_release_due(now=s.now + timedelta(days=8))
    mine = s.unreleased.seller_orders.get(seller=s.seller)
    return seller_order_hold_release(seller_order=mine)


def op_payout_run(s: Scene, v: int) -> object:
    """A manual run for the seller (and, variant 2, the other seller), or the schedule's."""
    if v == 1:
        return run_payouts(now=s.now + timedelta(days=4))
    sellers = [s.seller] if v == 0 else [s.seller, s.other]
    return run_payouts(sellers=sellers, now=s.now + timedelta(days=3))


def op_payout_send(s: Scene, v: int) -> object:
    return payout_send(payout=s.scheduled)


def op_approve(s: Scene, v: int) -> object:
    return payout_approve(payout=s.awaiting_approval, by=s.operator)


def op_mark_paid(s: Scene, v: int) -> object:
    return payout_mark_paid(payout=s.manual, by=s.operator, bank_reference=f"TRX-{s.tag}-{v}")


def op_freeze(s: Scene, v: int) -> object:
    policy = PayoutPolicy.objects.get(seller=s.seller)
    policy.frozen, policy.frozen_reason = True, f"KYC review {v}"
    return payout_policy_save(policy=policy, reason="concurrency test")


OPERATIONS: dict[str, Callable[[Scene, int], object]] = {
    "capture": op_capture,
    "refund": op_refund,
    "dispute_open": op_dispute_open,
    "dispute_close": op_dispute_close,
    "hold_release": op_hold_release,
    "payout_run": op_payout_run,
    "payout_send": op_payout_send,
    "approve": op_approve,
    "mark_paid": op_mark_paid,
    "freeze": op_freeze,
}
PAIRS = list(itertools.combinations_with_replacement(OPERATIONS, 2))
# Which other operation may make an operation refuse (an ApplicationError). A refund
# is refused once the payment is disputed or everything was refunded; a payout is
# stopped once frozen, or once a refund or dispute took the money that covered it;
# a second approval finds the payout approved. Nothing else may refuse.
MAY_REFUSE = {
    "refund": {"refund", "dispute_open"},
    "approve": {"approve", "freeze", "refund", "dispute_open"},
    "mark_paid": {"freeze", "refund", "dispute_open"},
}
# Money that leaves the seller's available balance without a payout: after these,
# open payouts may claim more than is available until the next check cancels them.
TAKES_AVAILABLE = {"refund", "dispute_open"}
SLACK = 4500  # the seller's available balance not claimed by the scene's open payouts


# --- Running a pair --------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    variant: int
    value: object = None
    error: BaseException | None = None
    trace: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.error is None:
            return f"{self.name}[{self.variant}] -> {self.value!r}"
        return f"{self.name}[{self.variant}] raised:\n{self.trace}"


def run_together(
    scene: Scene,
    calls: list[tuple[str, int]],
    operations: dict[str, Callable[[Scene, int], object]] | None = None,
) -> list[Outcome]:
    """Start the calls at the same moment, each on its own connection (``operations``:
    name to call, this module's ``OPERATIONS`` unless given)."""
    table = OPERATIONS if operations is None else operations
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome(name, variant) for name, variant in calls]

    def worker(outcome: Outcome) -> None:
        try:
            barrier.wait(10)
            outcome.value = table[outcome.name](scene, outcome.variant)
        except BaseException as exc:
            outcome.error, outcome.trace = exc, traceback.format_exc()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(outcome,)) for outcome in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), f"a call hung: {outcomes}"
    return outcomes


class LockConflicts(logging.Handler):
    """What the services that retry a deadlock or serialization failure themselves
    (``payments.ledger.retries``, the hold release job) logged: in this module, none may
    happen, retried or not."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def conflicts(self) -> list[str]:
        found = []
        for record in self.records:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            if any(word in text for word in ("deadlock", "serializ", "OperationalError")):
                found.append(text)
        return found


@pytest.fixture
def lock_conflicts():
    handler = LockConflicts()
    loggers = [
        logging.getLogger(name) for name in ("payments.ledger.retries", "payments.payouts.holds")
    ]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def no_tasks(monkeypatch):
    """Tasks queued on commit (sending a payout, emails, webhooks) are not published:
    each operation is exactly the service call it names."""
    monkeypatch.setattr(task_queue, "_publish", lambda task, args, countdown=None: None)


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_two_money_operations_at_once(first, second, no_tasks, lock_conflicts):
    CommissionRuleFactory(percentage_bps=1000)
    operator = operator_grant(user=UserFactory())
    for round_ in range(ROUNDS):
        scene = build_scene(f"{first}-{second}-{round_}", operator)
        before = _snapshot(scene)
        variant = round_ % VARIANTS
        other = (variant + round_) % VARIANTS if first == second else variant
        outcomes = run_together(scene, [(first, variant), (second, other)])

        unexpected = [
            o
            for o, p in zip(outcomes, reversed(outcomes), strict=True)
            if not o.ok
            and not (isinstance(o.error, ApplicationError) and p.name in MAY_REFUSE.get(o.name, ()))
        ]
        assert not unexpected, f"round {round_}: {outcomes}"
        assert not lock_conflicts.conflicts(), "\n".join(lock_conflicts.conflicts())
        assert_invariants(scene)
        assert_outcomes(scene, outcomes, before)


# --- What always holds -----------------------------------------------------------------


def _owed(seller: Seller, kind: str) -> int:
    """What the platform owes the seller on one account (negative: the seller's debt)."""
    account = LedgerAccount.objects.filter(seller=seller, kind=kind, currency="USD").first()
    return -account.balance_minor if account else 0


def _total(queryset, field: str) -> int:
    return int(queryset.aggregate(total=Sum(field))["total"] or 0)


def _paid_out(seller: Seller) -> int:
    """What left the seller's available balance for their bank: sent, less failed."""
    return _total(
        LedgerEntry.objects.filter(
            account__seller=seller,
            account__kind=Kind.AVAILABLE,
            transaction_kind__in=(TxnKind.PAYOUT_SENT, TxnKind.PAYOUT_FAILED),
        ),
        "amount_minor",
    )


def assert_invariants(scene: Scene) -> None:
    report = ledger_check()
    assert report.ok, "ledger_check:\n" + "\n".join(report.problems)

    for seller in scene.sellers:
        # Paid out at most what was earned and kept (from the business tables), plus
        # what the seller owes back (a refund or dispute after a payout).
        earned = _total(
            OrderLine.objects.filter(seller_order__seller=seller, order__paid_at__isnull=False),
            "seller_share_minor",
        )
        refunded = _total(
            RefundLine.objects.filter(
                refund__status=Refund.Status.SUCCEEDED, order_line__seller_order__seller=seller
            ),
            "seller_amount_minor",
        )
        lost = sum(
            line.lost_seller_minor
            for line in DisputeLine.objects.filter(
                dispute__status=Dispute.Status.LOST, order_line__seller_order__seller=seller
            )
        )
        debt = max(-_owed(seller, Kind.AVAILABLE), 0)
        assert _paid_out(seller) <= earned - refunded - lost + debt, (
            seller,
            _paid_out(seller),
            earned,
            refunded,
            lost,
            debt,
        )
        # What is held in ``disputed`` is what the open disputes still hold for the seller.
        held = sum(
            line.lost_seller_minor
            for line in DisputeLine.objects.filter(
                dispute__status=Dispute.Status.OPEN, order_line__seller_order__seller=seller
            )
        )
        assert _owed(seller, Kind.DISPUTED) == held, (seller, _owed(seller, Kind.DISPUTED), held)
        # Only available may go below zero (a debt); no other account of a seller.
        for kind in (Kind.PENDING, Kind.IN_TRANSIT, Kind.DISPUTED):
            assert _owed(seller, kind) >= 0, (seller, kind, _owed(seller, kind))
        # A payout never sent more than the available balance held when it was sent:
        # the balance only goes into debt by a refund or dispute after a payout.
        running = 0
        entries = LedgerEntry.objects.filter(
            account__seller=seller, account__kind=Kind.AVAILABLE
        ).order_by("transaction_id", "pk")
        for entry_id, kind, amount in entries.values_list("pk", "transaction_kind", "amount_minor"):
            running += amount
            if kind == TxnKind.PAYOUT_SENT:
                assert running <= 0, f"{seller}: payout entry #{entry_id} left a debt of {running}"

    frozen = PayoutPolicy.objects.filter(frozen=True, seller__isnull=False).values("seller")
    waiting = Payout.objects.filter(
        seller__in=frozen, status__in=(Status.SCHEDULED, Status.AWAITING_APPROVAL)
    )
    assert not waiting.exists(), list(waiting.values_list("pk", "seller_id", "status"))

    shared = PayoutEntry.objects.values("entry_id").annotate(n=Count("payout")).filter(n__gt=1)
    assert not shared.exists(), list(shared)


# --- What each operation promises, given the other -------------------------------------


@dataclass
class Snapshot:
    last_payout: int
    last_dispute: int


def _snapshot(scene: Scene) -> Snapshot:
    return Snapshot(
        last_payout=Payout.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
        last_dispute=Dispute.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
    )


def _keys(prefix: str) -> int:
    return LedgerTransaction.objects.filter(idempotency_key__startswith=prefix).count()


def assert_outcomes(scene: Scene, outcomes: list[Outcome], before: Snapshot) -> None:
    names = {o.name for o in outcomes}
    ok = {o.name for o in outcomes if o.ok}
    refused = {o.name for o in outcomes if not o.ok}
    s = scene

    def payout(p: Payout) -> Payout:
        return Payout.objects.get(pk=p.pk)

    def sent_once(p: Payout) -> bool:
        return _keys(f"payout:{p.pk}:sent") == 1

    if "capture" in names:  # nothing else touches the order waiting for its payment
        order = Order.objects.get(pk=s.awaiting.pk)
        assert order.status == Order.Status.PAID and order.paid_at is not None
        assert _keys(f"payment:{order.pk}") == 1
        assert set(order.seller_orders.values_list("status", flat=True)) == {"paid"}

    if "refund" in names:
        card_paid = Order.objects.get(pk=s.card_paid.pk)
        refunds = Refund.objects.filter(order=card_paid)
        assert _total(refunds.filter(status="succeeded"), "amount_minor") <= card_paid.total_minor
        assert not refunds.filter(status=Refund.Status.PENDING).exists()
        if "refund" in ok:
            assert refunds.filter(status=Refund.Status.SUCCEEDED).exists()
        if "dispute_open" in names and "refund" in refused:
            assert Dispute.objects.filter(order=card_paid).exists()

    if "dispute_open" in names:
        card_paid = Order.objects.get(pk=s.card_paid.pk)
        disputes = Dispute.objects.filter(order=card_paid, pk__gt=before.last_dispute)
        # One dispute per processor dispute id, however often it is reported.
        ids = {"aab"[o.variant] for o in outcomes if o.name == "dispute_open"}
        assert disputes.count() == len(ids), list(disputes.values_list("processor_dispute_id"))
        held = _total(DisputeLine.objects.filter(dispute__in=disputes), "amount_minor")
        given_back = _total(
            Refund.objects.filter(order=card_paid, status=Refund.Status.SUCCEEDED), "amount_minor"
        )
        # A dispute holds what the payment still has: succeeded refunds are not held
        # again; a refund that was pending when it opened is resolved against it.
        assert held <= card_paid.total_minor
        if not DisputeLine.objects.filter(dispute__in=disputes, refunded_seller_minor__gt=0):
            assert held + given_back <= card_paid.total_minor, (held, given_back)
        for dispute in disputes:
            assert _keys(f"dispute:{dispute.pk}:opened") <= 1

    if "dispute_close" in names:
        dispute = Dispute.objects.get(processor_dispute_id=s.dispute_id)
        assert dispute.status in (Dispute.Status.WON, Dispute.Status.LOST)
        assert _keys(f"dispute:{dispute.pk}:won") + _keys(f"dispute:{dispute.pk}:lost") == 1
        lines = DisputeLine.objects.filter(
            dispute=dispute, order_line__seller_order__seller=s.seller
        )
        assert sum(line.lost_seller_minor for line in lines) == 9000  # what it held for S

    if "hold_release" in names:
        mine = SellerOrder.objects.get(order=s.unreleased, seller=s.seller)
        assert mine.released_at is not None
        assert _keys(f"hold:{mine.pk}") == 1
        assert _owed(s.seller, Kind.PENDING) == 0 or "capture" in names

    if "payout_run" in names:
        created = Payout.objects.filter(pk__gt=before.last_payout, seller=s.seller)
        # One new payout of the seller at most, whatever the runs: the 45.00 not
        # claimed yet (less, when a hold release or a closed dispute added to it).
        made = list(created.values_list("pk", "period", "amount_minor"))
        assert len(made) <= 1, made
        if not names & (TAKES_AVAILABLE | {"freeze"}):
            assert len(made) == 1 and made[0][2] >= SLACK, made

    if not names & TAKES_AVAILABLE:
        # Open payouts never claim more than the available balance, unless money left
        # it since (a refund or dispute; the next check of each payout cancels it).
        for seller in s.sellers:
            claimed = amounts_claimed([seller.pk]).get((seller.pk, "USD"), 0)
            assert claimed <= _owed(seller, Kind.AVAILABLE), (seller, claimed)

    # A payout checked after a refund or dispute took T of the available balance goes
    # ahead only if the 45.00 not claimed by open payouts still covers T; checked
    # before, it goes ahead. The order is the ledger's: both post under the seller's
    # money lock, so transaction ids follow it.
    takes = dict(
        LedgerEntry.objects.filter(
            account__seller=s.seller,
            account__kind=Kind.AVAILABLE,
            transaction_kind__in=(TxnKind.REFUND, TxnKind.DISPUTE_OPENED),
            order_line__order=s.card_paid,
        )
        .values_list("transaction_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    for name, checked in (("payout_send", s.scheduled), ("mark_paid", s.manual)):
        if name not in names or not names & TAKES_AVAILABLE:
            continue
        checked = payout(checked)
        sent = LedgerTransaction.objects.filter(idempotency_key=f"payout:{checked.pk}:sent")
        sent_id = sent.values_list("pk", flat=True).first()
        taken_before = sum(t for pk, t in takes.items() if sent_id is None or pk < sent_id)
        if checked.status == Status.CANCELLED:
            assert taken_before > SLACK, (name, takes)
        else:
            assert sent_id is not None and taken_before <= SLACK, (name, checked.status, takes)
    stopped = payout(s.awaiting_approval).status == Status.CANCELLED
    if "approve" in names and names & TAKES_AVAILABLE and stopped:
        assert sum(takes.values()) > SLACK, takes

    if "payout_send" in names:
        scheduled = payout(s.scheduled)
        allowed = {Status.SENDING, Status.IN_TRANSIT}
        if "freeze" in names:
            # Held before it was sent; or frozen between its transfer and its bank
            # payout: the money waits in the seller's processor account.
            allowed |= {Status.HELD, Status.TRANSFERRED}
        if names & TAKES_AVAILABLE:
            allowed.add(Status.CANCELLED)
        assert scheduled.status in allowed, (scheduled.status, scheduled.failure_reason)
        on_its_way = (Status.SENDING, Status.TRANSFERRED, Status.IN_TRANSIT)
        assert sent_once(scheduled) == (scheduled.status in on_its_way)
        if scheduled.status == Status.TRANSFERRED:
            assert "frozen" in scheduled.failure_reason
            assert not scheduled.steps.filter(kind="bank_payout").exists()
        assert LocalTransfer.objects.filter(metadata__payout_id=str(scheduled.pk)).count() <= 1
        if scheduled.status == Status.CANCELLED:
            # Refund or dispute first: the payout was no longer covered, and says so.
            action = AuditRecord.objects.get(payout=scheduled, action="cancel")
            assert action.actor is None and "No longer covered" in action.reason
            assert not scheduled.breakdown.exists()

    if "approve" in names:
        approved = payout(s.awaiting_approval)
        if "approve" in ok:
            allowed = {Status.SCHEDULED} | ({Status.HELD} if "freeze" in names else set())
            assert approved.status in allowed, approved.status
            assert approved.approved_by_id == s.operator.pk
        else:
            assert approved.status in (Status.SCHEDULED, Status.HELD, Status.CANCELLED)
        approvals = AuditRecord.objects.filter(payout=approved, action="approve").count()
        assert approvals == 1 if "approve" in ok else approvals <= 1

    if "mark_paid" in names:
        manual = payout(s.manual)
        if "mark_paid" in ok:
            assert manual.status == Status.PAID and sent_once(manual)
            assert _keys(f"payout:{manual.pk}:paid") == 1
            assert AuditRecord.objects.filter(payout=manual, action="mark_paid").count() == 1
        else:
            assert manual.status in (Status.HELD, Status.CANCELLED) and not sent_once(manual)

    if "freeze" in names:
        assert PayoutPolicy.objects.get(seller=s.seller).frozen
        for p in (s.scheduled, s.awaiting_approval, s.manual):
            assert payout(p).status not in (Status.SCHEDULED, Status.AWAITING_APPROVAL)
