"""The revenue report has a column for each fee the platform earns beyond commission:
plan fees (less credits), listing fees and service fees; the net counts them."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from payments.ledger.posting import Posting, ledger_post, platform_account
from payments.models import SellerPlanChoice
from payments.reporting.revenue import revenue_report
from payments.revenue.listing_fees import product_listing_charge
from payments.revenue.plans import seller_plan_change, seller_plans_bill
from tests.factories import ListingFeeFactory, ProductFactory, SellerPlanFactory

pytestmark = pytest.mark.django_db

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
DEC_16 = datetime(2026, 12, 16, tzinfo=UTC)


def test_plan_listing_and_service_fees_have_their_own_columns(seller):
    basic = SellerPlanFactory(monthly_fee_minor=1000)
    SellerPlanChoice.objects.create(seller=seller, plan=basic, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=None, at=DEC_16)  # -516+1497
    ListingFeeFactory(amount_minor=50)
    product_listing_charge(product=ProductFactory(seller=seller), at=DEC_1)
    ledger_post(
        kind="adjustment",
        idempotency_key="service-fee-test",
        reference_type="test",
        reference_id=1,
        postings=[
            Posting(platform_account("processor", "USD"), 99),
            Posting(platform_account("service_fees", "USD"), -99),
        ],
    )

    (row,) = revenue_report(period="month")

    assert (row.plan_fees, row.listing_fees, row.service_fees) == (1000 - 516 + 1497, 50, 99)
    assert row.net == row.commission + 1981 + 50 + 99 - row.processor_fees


def test_the_admin_report_shows_the_fee_columns(operator_client, seller):
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(monthly_fee_minor=1234))
    seller_plans_bill()

    page = operator_client.get(reverse("admin:payments_revenuereport_changelist"))

    text = page.content.decode()
    assert "Plan fees" in text and "Listing fees" in text and "Service fees" in text
