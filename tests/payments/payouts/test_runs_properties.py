"""Property: over random sales, refunds, hold releases and payout runs, the ledger
stays consistent and no seller is ever paid more than they earned less refunds."""

import contextlib

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.kernel.errors import ApplicationError
from payments.checks import ledger_check
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.balances import seller_balance
from payments.models import Payout, RefundLine
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db

steps = st.lists(
    st.one_of(
        st.tuples(st.just("sale"), st.integers(0, 1), st.integers(1, 50_000)),
        st.tuples(st.just("refund"), st.integers(0, 9), st.floats(0.01, 1.0)),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("payout")),
    ),
    min_size=1,
    max_size=15,
)


def scenario(ops, capture):
    CommissionRuleFactory(percentage_bps=1200, fixed_fee_minor=30, currency="USD")
    sellers = []
    for _ in range(2):
        seller = enable_payouts(SellerFactory())
        sellers.append(seller)
    orders = []
    for op in ops:
        with capture(execute=True):
            if op[0] == "sale":
                orders.append(paid_order([(sellers[op[1]], op[2], 1)]))
            elif op[0] == "refund" and orders:
                order = orders[op[1] % len(orders)]
                order.refresh_from_db()
                amount = int(order.refundable_minor * op[2])
                # Nothing left, or an amount of 0: refused, nothing written.
                with contextlib.suppress(ApplicationError):
                    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=amount))
            elif op[0] == "release" and orders:
                order = orders[op[1] % len(orders)]
                seller_order_hold_release(seller_order=order.seller_orders.get())
            elif op[0] == "payout":
                run_payouts(sellers=sellers)
        report = ledger_check()
        assert report.ok, report.problems
    for seller in sellers:
        paid = Payout.objects.filter(seller=seller, status="paid").aggregate(t=Sum("amount_minor"))
        earned = seller.seller_orders.aggregate(t=Sum("seller_share_minor"))["t"] or 0
        refunded = (
            RefundLine.objects.filter(
                refund__status="succeeded", order_line__seller_order__seller=seller
            ).aggregate(t=Sum("seller_amount_minor"))["t"]
            or 0
        )
        balance = seller_balance(seller=seller, currency="USD")
        # Every cent the seller earned, less refunds, is somewhere: still owed or paid out.
        assert balance.total_owed + balance.paid_out == earned - refunded
        assert balance.paid_out == (paid["t"] or 0)
        # Paid more than earned only by a refund after a payout: a debt the next payout nets.
        assert balance.paid_out <= earned - refunded + max(0, -balance.available)


@settings(
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=steps)
def test_sellers_are_never_paid_more_than_they_earned(
    ops, eager_celery, django_capture_on_commit_callbacks
):
    with transaction.atomic():
        scenario(ops, django_capture_on_commit_callbacks)
        transaction.set_rollback(True)
