"""Helpers of the payouts tests."""

from payments.models import Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order


def made_payout(seller) -> Payout:
    """A released 100.00 sale at 10 % commission: a payout of 90.00, made, not sent."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run_payouts(sellers=[seller])
    return Payout.objects.filter(seller=seller).latest("pk")
