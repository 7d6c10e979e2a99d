"""Operators set seller plans and listing fees in the admin as money and percent, through
the services; charges are read-only; a seller's plan is changed on its own page."""

import pytest
from django.urls import reverse

from payments.models import (
    AuditRecord,
    ListingFee,
    SellerPlan,
    SellerPlanCharge,
    SellerPlanChoice,
)
from payments.revenue.plans import seller_plan_change
from tests.factories import SellerPlanFactory
from tests.payments.admin.pages import problems, visible_text

pytestmark = pytest.mark.django_db


def _plan_form(**values):
    return {
        "name": "Pro",
        "description": "",
        "currency": "USD",
        "is_offered": "on",
        "monthly_fee": "29.00",
        "commission": "5",
        "change_reason": "Launch",
        **values,
    }


def test_an_operator_adds_a_plan_as_money_and_percent(operator_client, operator):
    response = operator_client.post(reverse("admin:payments_sellerplan_add"), _plan_form())

    assert response.status_code == 302, response.content.decode()[:3000]
    plan = SellerPlan.objects.get()
    assert (plan.monthly_fee_minor, plan.commission_bps) == (2900, 500)
    record = AuditRecord.objects.get()
    assert (record.actor, record.via, record.reason) == (operator, "admin", "Launch")


def test_a_plan_without_a_commission_leaves_the_rules_in_charge(operator_client):
    operator_client.post(reverse("admin:payments_sellerplan_add"), _plan_form(commission=""))

    assert SellerPlan.objects.get().commission_bps is None


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"monthly_fee": "-1"}, "negative"),
        ({"monthly_fee": "10.5", "currency": "JPY"}, "JPY"),
        ({"commission": "120"}, "more than 100"),
    ],
)
def test_a_bad_plan_is_a_form_error_and_nothing_is_saved(operator_client, values, error):
    response = operator_client.post(reverse("admin:payments_sellerplan_add"), _plan_form(**values))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not SellerPlan.objects.exists()


def test_an_operator_adds_a_listing_fee_as_money(operator_client, category):
    response = operator_client.post(
        reverse("admin:payments_listingfee_add"),
        {
            "scope": "category",
            "category": category.pk,
            "currency": "KWD",
            "fee": "0.125",
            "listing_days": "30",
            "active_from": "2026-01-01T00:00:00",
            "change_reason": "Books",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert ListingFee.objects.get().amount_minor == 125


def test_a_listing_fee_with_too_many_decimals_is_refused(operator_client):
    response = operator_client.post(
        reverse("admin:payments_listingfee_add"),
        {
            "scope": "default",
            "currency": "USD",
            "fee": "0.125",
            "listing_days": "30",
            "active_from": "2026-01-01T00:00:00",
            "change_reason": "x",
        },
    )

    assert response.status_code == 200
    assert not ListingFee.objects.exists()


def test_an_operator_changes_a_sellers_plan_after_seeing_the_proration(
    operator_client, operator, seller
):
    basic = SellerPlanFactory(name="Basic", monthly_fee_minor=1000)
    pro = SellerPlanFactory(name="Pro", is_offered=False)
    seller_plan_change(seller=seller, plan=basic, by=seller.user)
    url = reverse("admin:payments_sellerplanchoice_change_plan")
    form = {"seller": seller.pk, "plan": pro.pk, "reason": "Negotiated"}

    preview = operator_client.post(url, form)

    assert preview.status_code == 200
    text = visible_text(preview.content.decode())
    assert "Credited back" in text and "Nothing has changed yet" in text
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == basic

    done = operator_client.post(url, {**form, "confirm": "1"})

    assert done.status_code == 302
    choice = SellerPlanChoice.objects.get(ended_at__isnull=True)
    assert (choice.plan, choice.chosen_by) == (pro, operator)
    assert AuditRecord.objects.filter(action="plan chosen", reason="Negotiated").exists()


def test_a_plan_in_another_currency_is_refused_on_the_change_page(operator_client, seller):
    plan = SellerPlanFactory(currency="EUR")

    response = operator_client.post(
        reverse("admin:payments_sellerplanchoice_change_plan"),
        {"seller": seller.pk, "plan": plan.pk, "reason": "x", "confirm": "1"},
    )

    assert response.status_code == 200
    assert "EUR" in response.content.decode()
    assert not SellerPlanChoice.objects.exists()


def test_plan_and_charge_pages_show_money_not_minor_units(operator_client, seller):
    plan = SellerPlanFactory(name="Pro", monthly_fee_minor=2917, commission_bps=550)
    seller_plan_change(seller=seller, plan=plan, by=seller.user)
    charge = SellerPlanCharge.objects.get()
    urls = [
        reverse("admin:payments_sellerplan_changelist"),
        reverse("admin:payments_sellerplan_change", args=[plan.pk]),
        reverse("admin:payments_sellerplanchoice_changelist"),
        reverse("admin:payments_sellerplancharge_changelist"),
        reverse("admin:payments_sellerplancharge_change", args=[charge.pk]),
        reverse("admin:payments_listingfee_add"),
        reverse("admin:payments_listingcharge_changelist"),
    ]
    for url in urls:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        text = visible_text(response.content.decode())
        assert problems(text, {2917, charge.amount_minor}) == [], url
    assert "$29.17" in visible_text(operator_client.get(urls[0]).content.decode())


def test_charges_cannot_be_edited_in_the_admin(operator_client, seller):
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    charge = SellerPlanCharge.objects.get()

    response = operator_client.post(
        reverse("admin:payments_sellerplancharge_change", args=[charge.pk]), {"amount_minor": 1}
    )

    assert response.status_code in (403, 405)
    charge.refresh_from_db()
    assert charge.amount_minor != 1


@pytest.mark.django_db
def test_changing_a_chosen_plans_currency_in_the_admin_is_a_form_error(operator_client, seller):
    plan = SellerPlanFactory(currency="USD", monthly_fee_minor=2900, commission_bps=500)
    seller_plan_change(seller=seller, plan=plan, by=seller.user)

    response = operator_client.post(
        reverse("admin:payments_sellerplan_change", args=[plan.pk]),
        {
            "name": plan.name,
            "description": "",
            "currency": "EUR",
            "is_offered": "on",
            "monthly_fee": "29.00",
            "commission": "5",
            "change_reason": "Move to euros",
        },
    )

    assert response.status_code == 200
    assert "currency cannot change" in response.content.decode()
    plan.refresh_from_db()
    assert plan.currency == "USD"
