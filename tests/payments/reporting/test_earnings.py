"""What the seller is told of their earnings (payments/reporting/earnings.py): the
commission terms shown are the ones charged."""

import pytest

from payments.revenue.plans import seller_plan_change
from tests.factories import CommissionRuleFactory, SellerPlanFactory
from tests.money_helpers import paid_order


@pytest.mark.django_db
def test_the_commission_shown_is_the_one_charged_in_another_currency(seller):
    from payments.reporting.earnings import commission_terms

    CommissionRuleFactory(percentage_bps=1000)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(commission_bps=500), by=seller.user)
    seller.default_currency = "EUR"  # the seller now sells in euros too
    seller.save()

    line = paid_order([(seller, 10000, 1)]).lines.get()
    shown = commission_terms(seller=seller, currencies=["EUR"])["EUR"]

    assert line.commission_source == "plan" and line.commission_minor == 500  # 5 % charged
    assert shown is not None
    assert shown.percentage_bps == 500, f"shown {shown.percentage_bps} bps, charged 500"
