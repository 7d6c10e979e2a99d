"""check_ledger 17: plan and listing charges agree with their ledger transactions."""

import pytest

from payments.checks import ledger_check
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import ListingCharge, SellerPlanCharge
from payments.revenue.listing_fees import product_listing_charge
from payments.revenue.plans import seller_plan_change
from tests.factories import ListingFeeFactory, ProductFactory, SellerPlanFactory

pytestmark = pytest.mark.django_db


def test_charges_that_agree_with_the_ledger_pass(seller):
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    ListingFeeFactory()
    product_listing_charge(product=ProductFactory(seller=seller))

    assert ledger_check().problems == []


def test_a_charge_whose_amount_differs_from_its_transaction_is_reported(seller):
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    charge = SellerPlanCharge.objects.get()
    SellerPlanCharge.objects.filter(pk=charge.pk).update(amount_minor=charge.amount_minor + 1)

    problems = ledger_check().problems

    assert any(f"seller plan charge #{charge.pk}" in p for p in problems), problems


def test_a_charge_with_an_amount_and_no_transaction_is_reported(seller):
    ListingFeeFactory()
    charge = product_listing_charge(product=ProductFactory(seller=seller))
    ListingCharge.objects.filter(pk=charge.pk).update(ledger_transaction=None)

    problems = ledger_check().problems

    assert any("no ledger transaction" in p for p in problems), problems
    assert any("belongs to no plan or listing charge" in p for p in problems), problems


def test_a_fee_transaction_of_no_charge_is_reported(seller):
    ledger_post(
        kind="plan_fee",
        idempotency_key="plan-fee:stray",
        reference_type="test",
        reference_id=1,
        postings=[
            Posting(seller_account(seller, "available", "USD"), 100),
            Posting(platform_account("plan_fees", "USD"), -100),
        ],
    )

    problems = ledger_check().problems

    assert any("belongs to no plan or listing charge" in p for p in problems), problems
