"""The revenue models' demo data: plans in each currency, listing fees, a seller on Pro;
running it twice changes nothing."""

import pytest

from marketplace.demo_revenue import demo_revenue_seed
from payments.models import ListingFee, SellerPlan, SellerPlanCharge, SellerPlanChoice, ServiceFee
from tests.factories import SellerFactory

pytestmark = pytest.mark.django_db


def test_demo_revenue_seed_makes_plans_fees_and_a_pro_seller_once(operator):
    seller = SellerFactory(slug="harbor-ceramics")
    created = []

    demo_revenue_seed(operator=operator, created=created)
    demo_revenue_seed(operator=operator, created=created)

    assert SellerPlan.objects.count() == 6
    assert ListingFee.objects.count() == 3
    assert SellerPlanChoice.objects.get(seller=seller).plan.name == "Pro"
    assert SellerPlanCharge.objects.filter(seller=seller).count() == 1
    assert ServiceFee.objects.count() == 3
    assert len(created) == 6 + 3 + 3 + 1
