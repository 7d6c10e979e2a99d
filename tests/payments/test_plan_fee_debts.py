"""A seller on a plan: the fee is a debt the next payout nets, and the plan's lower
commission applies to the next sale."""

import pytest

from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import Payout, SellerPlanCharge
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.revenue.plans import seller_plan_change
from tests.factories import CommissionRuleFactory, SellerPlanFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


def test_a_plan_fee_debt_is_netted_from_the_next_payout(run, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    fee = SellerPlanCharge.objects.get().amount_minor
    assert seller_balance(seller=seller, currency="USD").available == -fee  # a debt

    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run(run_payouts)

    payout = Payout.objects.get()
    share = order.lines.get().seller_share_minor  # 9500: the plan's 5 % commission
    assert payout.amount_minor == share - fee
    assert seller_balance(seller=seller, currency="USD").available == 0
    assert ledger_check().problems == []


def test_no_payout_while_the_fee_debt_is_larger_than_what_is_available(run, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_plan_change(
        seller=seller, plan=SellerPlanFactory(monthly_fee_minor=10**8), by=seller.user
    )
    order = paid_order([(seller, 1000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())

    run(run_payouts)

    assert not Payout.objects.exists()
    assert ledger_check().problems == []


def test_a_seller_on_a_plan_pays_the_plans_lower_commission_on_the_next_sale(seller):
    CommissionRuleFactory(percentage_bps=1000)
    plan = SellerPlanFactory(commission_bps=500)
    seller_plan_change(seller=seller, plan=plan, by=seller.user)

    order = paid_order([(seller, 10000, 1)])

    line = order.lines.get()
    assert line.commission_minor == 500
    assert line.seller_share_minor == 9500
    assert line.commission_source == "plan"
    assert line.seller_plan == plan
    assert ledger_check().problems == []
