"""The operator console's money operations at the same moment as another, on PostgreSQL.

Each pair starts together behind a barrier on its own connection, on the scene of
``test_concurrency_pairs`` (``build_scene``). The console's operations are the
services its pages call: an operator refund of the seller's line of the card-paid
sale through a confirmation key (``order_refund_by_operator``), the approval of the
customer's refund request for the same line, and ``seller_freeze``. They race each
other, a dispute of the same payment, a payout run and a payout being sent.

Afterwards: no unexpected error (only a refusal the other operation explains), no
lock conflict, the invariants of ``test_concurrency_pairs`` hold once every refund
the processor accepted has been confirmed, and the customer never got back more
than the line (or the payment).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db.models import Sum

from accounts.services import operator_grant
from marketplace.kernel.errors import ApplicationError
from marketplace.models import Order, OrderLine
from payments.collection.disputes import dispute_opened
from payments.collection.refund_requests import refund_request_approve, refund_request_create
from payments.collection.refunds import order_refund_by_operator, refund_mark_succeeded
from payments.ledger.audit import audit_history
from payments.models import Payout, Refund, RefundRequest
from payments.payouts.freezes import seller_freeze
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from tests.factories import CommissionRuleFactory, UserFactory
from tests.payments import test_concurrency_pairs as pairs
from tests.payments.test_concurrency_pairs import (
    Scene,
    assert_invariants,
    build_scene,
    run_together,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# The pair matrix's fixtures: tasks queued on commit are not published, and any lock
# conflict a service logged fails the test.
no_tasks, lock_conflicts = pairs.no_tasks, pairs.lock_conflicts

ROUNDS = 3


def _line(s: Scene) -> OrderLine:
    return s.card_paid.lines.get(seller_order__seller=s.seller)


def _operator_refund(key: str, amount: int | None = None) -> Callable[[Scene], object]:
    def call(s: Scene) -> object:
        line = _line(s)
        return order_refund_by_operator(
            order=s.card_paid,
            line_amounts={line.pk: amount if amount is not None else line.refundable_minor},
            by=s.operator,
            reason="Arrived broken",
            confirmation=key,
        )

    return call


def _approve(s: Scene) -> object:
    request = RefundRequest.objects.get(order_line=_line(s))
    return refund_request_approve(request=request, by=s.operator, note="Fair")


def _dispute(s: Scene) -> object:
    return dispute_opened(
        processor_name="local",
        processor_dispute_id=f"dp-{s.tag}-console",
        payment_id=s.payment_id,
        amount_minor=s.card_paid.total_minor,
    )


def _run(s: Scene) -> object:
    return run_payouts(sellers=[s.seller], now=s.now + timedelta(days=3))


def _send(s: Scene) -> object:
    return payout_send(payout=s.scheduled)


def _freeze(s: Scene) -> object:
    return seller_freeze(seller=s.seller, by=s.operator, reason="KYC review")


OPERATIONS: dict[str, Callable[[Scene], object]] = {
    "operator_refund": _operator_refund("key-a"),
    "operator_refund_same_key": _operator_refund("key-a"),
    "operator_refund_other_key": _operator_refund("key-b"),
    "operator_refund_part": _operator_refund("key-c", 3000),
    "approve": _approve,
    "dispute_open": _dispute,
    "payout_run": _run,
    "payout_send": _send,
    "freeze": _freeze,
}
# The same calls as ``run_together`` makes them (these have no variants).
BY_VARIANT = {name: (lambda s, _variant, call=call: call(s)) for name, call in OPERATIONS.items()}
PAIRS = [
    ("operator_refund", "operator_refund_same_key"),
    ("operator_refund", "operator_refund_other_key"),
    ("operator_refund_part", "operator_refund_other_key"),
    ("operator_refund", "approve"),
    ("operator_refund_part", "approve"),
    ("operator_refund", "dispute_open"),
    ("approve", "dispute_open"),
    ("operator_refund", "payout_run"),
    ("operator_refund", "payout_send"),
    ("approve", "payout_send"),
    ("freeze", "payout_send"),
    ("freeze", "payout_run"),
    ("freeze", "operator_refund"),
]
# Which other operation may make an operation refuse: the line is refunded already,
# or the payment is disputed; a payout is stopped by a freeze.
REFUNDS = {
    "operator_refund",
    "operator_refund_same_key",
    "operator_refund_other_key",
    "operator_refund_part",
    "approve",
}
MAY_REFUSE = {name: REFUNDS | {"dispute_open"} for name in REFUNDS}


def _confirm_accepted_refunds() -> None:
    """What the processor's refund events do: each refund it accepted succeeds."""
    for refund in Refund.objects.filter(status=Refund.Status.PENDING).exclude(
        processor_refund_id=""
    ):
        refund_mark_succeeded(refund=refund)


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_a_console_operation_and_another_at_once(first, second, no_tasks, lock_conflicts):
    CommissionRuleFactory(percentage_bps=1000)
    operator = operator_grant(user=UserFactory())
    for round_ in range(ROUNDS):
        scene = build_scene(f"console-{first}-{second}-{round_}", operator)
        line = _line(scene)
        refund_request_create(customer=scene.card_paid.customer, order_line=line, reason="It broke")
        names = (first, second) if round_ % 2 == 0 else (second, first)
        outcomes = run_together(scene, [(name, 0) for name in names], BY_VARIANT)

        unexpected = [
            o
            for o, p in zip(outcomes, reversed(outcomes), strict=True)
            if not o.ok
            and not (isinstance(o.error, ApplicationError) and p.name in MAY_REFUSE.get(o.name, ()))
        ]
        assert not unexpected, f"round {round_}: {outcomes}"
        assert not lock_conflicts.conflicts(), "\n".join(lock_conflicts.conflicts())
        _confirm_accepted_refunds()
        assert_invariants(scene)

        line.refresh_from_db()
        refunds = Refund.objects.filter(order=scene.card_paid)
        given = refunds.exclude(status=Refund.Status.FAILED).aggregate(t=Sum("amount_minor"))["t"]
        assert (given or 0) <= line.gross_minor, list(refunds.values_list("amount_minor", "status"))
        assert line.refunded_minor == (given or 0)
        ok = {o.name for o in outcomes if o.ok}
        if {"operator_refund", "operator_refund_same_key"} <= set(names):
            # One confirmation key: one refund, both callers told about the same one.
            assert refunds.count() == 1
            assert audit_history(scene.card_paid).filter(action="refund").count() == 1
            values = [o.value.refund.pk for o in outcomes if o.ok]
            assert len(set(values)) == 1 and len(values) == 2, outcomes
            assert sorted(o.value.created for o in outcomes) == [False, True]
        if "approve" in names:
            request = RefundRequest.objects.get(order_line=line)
            if "approve" in ok:
                assert request.status == RefundRequest.Status.APPROVED
                assert request.refund_id is not None
            else:
                # Not approved: still waiting, unless another refund left the line refunded
                # in full, which closes it as refunded otherwise.
                succeeded = refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(
                    t=Sum("amount_minor")
                )["t"]
                full = (succeeded or 0) >= line.gross_minor
                assert request.status == (
                    RefundRequest.Status.REFUNDED if full else RefundRequest.Status.REQUESTED
                ), (request.status, succeeded, line.gross_minor)
                assert request.refund_id is None
        if "freeze" in names:
            for payout in Payout.objects.filter(seller=scene.seller):
                assert payout.status not in (
                    Payout.Status.SCHEDULED,
                    Payout.Status.AWAITING_APPROVAL,
                ), payout
        order = Order.objects.get(pk=scene.card_paid.pk)
        assert order.refunded_minor == (given or 0)
