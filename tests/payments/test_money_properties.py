"""Property tests: for random orders, rules and refunds, every cent is accounted for.

For orders of 1 to 20 lines from 1 to 5 sellers, in currencies with 0, 2 and
3 decimals, under rules with percentages, fixed fees, minimums and maximums:
the parts of every line add up, no party gets a negative share of a sale,
and any sequence of partial refunds (some failing, some after the hold is
released) keeps every invariant ``check_ledger`` checks and never refunds
more than was captured.
"""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.captures import order_payment_captured
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.models import CommissionRule, Refund
from payments.payouts.holds import seller_order_hold_release
from tests.factories import ProductFactory, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db

CURRENCIES = ["JPY", "USD", "KWD"]


@st.composite
def rules(draw):
    minimum = draw(st.none() | st.integers(0, 2_000))
    maximum = draw(st.none() | st.integers(minimum or 0, 50_000))
    return {
        "percentage_bps": draw(st.integers(0, 10_000)),
        "fixed_fee_minor": draw(st.integers(0, 1_000)),
        "minimum_minor": minimum,
        "maximum_minor": maximum,
    }


@st.composite
def scenarios(draw):
    sellers = draw(st.integers(1, 5))
    return {
        "currency": draw(st.sampled_from(CURRENCIES)),
        "sellers": sellers,
        "default_rule": draw(rules()),
        "seller_rule": draw(st.none() | st.tuples(st.integers(0, sellers - 1), rules())),
        "lines": draw(
            st.lists(
                st.tuples(
                    st.integers(0, sellers - 1),  # seller
                    st.integers(0, 5_000_000),  # unit price
                    st.integers(1, 5),  # quantity
                ),
                min_size=1,
                max_size=20,
            )
        ),
        "fee_per_mille": draw(st.integers(0, 50)),
        "refunds": draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["order", "seller", "line"]),
                    st.integers(0, 19),  # which seller order / line
                    st.floats(0, 1.2),  # share of what is left, may overshoot
                    st.sampled_from(["succeed", "fail", "release-then-succeed"]),
                ),
                max_size=6,
            )
        ),
    }


def run(scenario):
    currency = scenario["currency"]
    sellers = [SellerFactory(default_currency=currency) for _ in range(scenario["sellers"])]
    CommissionRule.objects.create(scope="default", currency=currency, **scenario["default_rule"])
    if scenario["seller_rule"]:
        index, rule = scenario["seller_rule"]
        CommissionRule.objects.create(
            scope="seller", seller=sellers[index], currency=currency, **rule
        )
    cart = []
    for seller_index, price, quantity in scenario["lines"]:
        product = ProductFactory(
            seller=sellers[seller_index], price_minor=price, currency=currency, stock=quantity
        )
        cart.append(CartItem(product.pk, quantity))
    if not any(price for _, price, _ in scenario["lines"]):
        with pytest.raises(InvalidRequest, match="nothing to pay for"):
            place_order(customer=UserFactory(), cart_items=cart)
        return
    order = place_order(customer=UserFactory(), cart_items=cart)

    for line in order.lines.all():
        assert line.commission_minor + line.seller_share_minor == line.gross_minor
        assert 0 <= line.commission_minor <= line.gross_minor
        assert line.seller_share_minor >= 0
    assert order.total_minor == sum(line.gross_minor for line in order.lines.all())

    fee = order.total_minor * scenario["fee_per_mille"] // 1000
    order_payment_captured(order=order, processor_fee_minor=fee)
    assert ledger_check().ok, ledger_check().problems

    seller_orders = list(order.seller_orders.order_by("pk"))
    lines = list(order.lines.order_by("pk"))
    for scope, index, share, outcome in scenario["refunds"]:
        target = {}
        if scope == "seller":
            target["seller_order"] = seller_orders[index % len(seller_orders)]
        elif scope == "line":
            target["order_line"] = lines[index % len(lines)]
        scope_lines = order.lines.all()
        if "seller_order" in target:
            scope_lines = scope_lines.filter(seller_order=target["seller_order"])
        if "order_line" in target:
            scope_lines = scope_lines.filter(pk=target["order_line"].pk)
        left = sum(line.gross_minor - line.refunded_minor for line in scope_lines)
        amount = int(left * share)
        if amount <= 0 or amount > left:
            order.refresh_from_db()
            # A fully refunded order is no longer refundable at all.
            expected = InvalidState if order.status == Order.Status.REFUNDED else InvalidRequest
            with pytest.raises(expected):
                refund_create(order=order, amount_minor=amount, **target)
            continue
        refund = refund_create(order=order, amount_minor=amount, **target)
        if outcome == "fail":
            refund_mark_failed(refund=refund)
        else:
            if outcome == "release-then-succeed":
                for seller_order in seller_orders:
                    seller_order_hold_release(seller_order=seller_order)
            refund_mark_succeeded(refund=refund)
        report = ledger_check()
        assert report.ok, report.problems

    order.refresh_from_db()
    succeeded = sum(
        r.amount_minor for r in Refund.objects.filter(order=order, status=Refund.Status.SUCCEEDED)
    )
    assert succeeded == order.refunded_minor <= order.total_minor
    if succeeded == order.total_minor:
        assert order.status == Order.Status.REFUNDED


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_every_cent_is_accounted_for(scenario):
    with transaction.atomic():
        run(scenario)
        transaction.set_rollback(True)  # each example starts from an empty database
