"""Fixtures of the payouts tests."""

import pytest

from payments.payouts.holds import seller_order_hold_release
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order


@pytest.fixture
def earning(seller):
    """A seller with 90.00 available: a paid 100.00 order at 10%, hold released."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    return seller
