"""The seller's plan page: the current plan, the offered plans in their currency, the
prorated switch shown before confirming (POST, CSRF), the charges; the statement and
the dashboard show plan and listing fees as their own rows."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.models import SellerPlanCharge, SellerPlanChoice
from payments.reporting.statements import seller_statement
from payments.revenue.plans import seller_plan_change
from tests.factories import ListingFeeFactory, ProductFactory, SellerPlanFactory

pytestmark = pytest.mark.django_db


def _text(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_page_shows_the_current_plan_and_the_plans_in_the_sellers_currency(
    seller_client, seller
):
    basic = SellerPlanFactory(name="Standard", monthly_fee_minor=0, commission_bps=1000)
    SellerPlanFactory(name="Pro", monthly_fee_minor=2900, commission_bps=550)
    SellerPlanFactory(name="Yen plan", currency="JPY")
    SellerPlanFactory(name="Hidden", is_offered=False)
    seller_plan_change(seller=seller, plan=basic, by=seller.user)

    text = _text(seller_client.get(reverse("marketplace:seller_plan")))

    assert "Current plan Standard $0.00 a month" in text
    assert "Pro $29.00 a month Commission: 5.5%" in text
    assert "Yen plan" not in text and "Hidden" not in text


def test_switching_shows_the_prorated_charge_before_anything_changes(seller_client, seller):
    basic = SellerPlanFactory(name="Basic", monthly_fee_minor=1000)
    pro = SellerPlanFactory(name="Pro")
    seller_plan_change(seller=seller, plan=basic, by=seller.user)

    page = seller_client.get(reverse("marketplace:seller_plan"), {"switch": pro.pk})

    text = _text(page)
    assert "Switch to Pro?" in text and "Nothing has changed yet" in text
    assert "Credited back: the unused part of Basic" in text
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == basic


def test_confirming_switches_the_plan(seller_client, seller):
    pro = SellerPlanFactory(name="Pro")

    response = seller_client.post(reverse("marketplace:seller_plan"), {"plan": pro.pk})

    assert response.status_code == 302
    assert SellerPlanChoice.objects.get().plan == pro
    text = _text(seller_client.get(reverse("marketplace:seller_plan")))
    assert "You are now on the Pro plan." in text
    assert "Charged: " in text


def test_a_plan_in_another_currency_is_refused_with_a_message(seller_client, seller):
    plan = SellerPlanFactory(currency="EUR")

    response = seller_client.post(
        reverse("marketplace:seller_plan"), {"plan": plan.pk}, follow=True
    )

    assert "Nothing was changed." in _text(response)
    assert not SellerPlanChoice.objects.exists()


def test_a_preview_of_an_unknown_plan_is_a_400(seller_client):
    response = seller_client.get(reverse("marketplace:seller_plan"), {"switch": "nope"})

    assert response.status_code == 400


def test_the_switch_needs_csrf(client, seller):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(seller.user)
    plan = SellerPlanFactory()

    response = csrf_client.post(reverse("marketplace:seller_plan"), {"plan": plan.pk})

    assert response.status_code == 403
    assert not SellerPlanChoice.objects.exists()


def test_a_customer_is_sent_to_open_a_shop(customer_client):
    response = customer_client.get(reverse("marketplace:seller_plan"))

    assert response.status_code == 302


def test_the_statement_shows_plan_and_listing_fees_as_their_own_rows(seller_client, seller):
    ListingFeeFactory(amount_minor=25)
    basic = SellerPlanFactory(name="Basic", monthly_fee_minor=1000)
    seller_plan_change(seller=seller, plan=basic, by=seller.user)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(name="Pro"), by=seller.user)
    product = ProductFactory(seller=seller, title="Lamp", is_active=False)
    from marketplace.services.products import product_set_active

    product_set_active(product=product, seller=seller, active=True)
    today = timezone.localdate()
    month = today.strftime("%B %Y")

    statement = seller_statement(seller=seller, currency="USD", start=today, end=today)

    assert statement.listing_fees == 25
    assert statement.plan_fees > 0
    items = dict(statement.fee_items)
    assert f"Plan fee — Basic, {month}" in items
    assert f"Plan fee — Pro, {month}" in items
    assert "Listing fee — Lamp" in items and items["Listing fee — Lamp"] == -25
    assert statement.closing == statement.opening - statement.plan_fees - statement.listing_fees
    text = _text(seller_client.get(reverse("marketplace:seller_statement")))
    assert "Plan fees" in text and "Listing fees" in text
    assert f"Plan fee — Pro, {month}" in text


def test_the_dashboard_links_the_plan_page(seller_client):
    page = seller_client.get(reverse("marketplace:seller_dashboard"))

    assert reverse("marketplace:seller_plan") in page.content.decode()


def test_the_dashboard_says_a_debt_comes_from_the_plan_fee(seller_client, seller):
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)

    text = _text(seller_client.get(reverse("marketplace:seller_dashboard")))

    assert "from your plan's monthly fee" in text.replace("&#x27;", "'")


def test_the_transactions_page_shows_plan_fees_credits_and_listing_fees(seller_client, seller):
    ListingFeeFactory(amount_minor=25)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(name="Basic"), by=seller.user)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(name="Pro"), by=seller.user)
    from payments.revenue.listing_fees import product_listing_charge

    product_listing_charge(product=ProductFactory(seller=seller, title="Lamp"))
    month = timezone.localdate().strftime("%B %Y")

    text = _text(seller_client.get(reverse("marketplace:seller_transactions")))

    assert f"Plan fee — Pro, {month}" in text
    assert "Plan fee credited" in text or "Plan fee" in text
    assert "Listing fee — Lamp" in text and "-$0.25" in text.replace("−", "-")


@pytest.mark.django_db
def test_a_plan_in_the_wrong_currency_is_refused_on_the_sellers_page(seller, client):
    euro = SellerPlanFactory(currency="EUR")
    client.force_login(seller.user)

    response = client.post(reverse("marketplace:seller_plan"), {"plan": euro.pk})

    assert response.status_code == 302
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["abc", "99999999999999999999", "-1", ""])
def test_odd_plan_ids_on_the_sellers_page_change_nothing_and_never_500(seller, client, value):
    SellerPlanFactory()
    client.force_login(seller.user)

    shown = client.get(reverse("marketplace:seller_plan"), {"switch": value})
    posted = client.post(reverse("marketplace:seller_plan"), {"plan": value})

    assert shown.status_code in (200, 400)
    assert posted.status_code == 302
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()


@pytest.mark.django_db
def test_a_seller_cannot_choose_a_plan_not_offered(seller, client, api_as):
    hidden = SellerPlanFactory(is_offered=False)
    client.force_login(seller.user)

    client.post(reverse("marketplace:seller_plan"), {"plan": hidden.pk})
    response = api_as(seller.user).post(reverse("api:my-plan"), {"plan": hidden.pk}, format="json")

    assert 400 <= response.status_code < 500
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()
