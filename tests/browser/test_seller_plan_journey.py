"""A seller changes plan in a real Chromium: they open their plan page, choose Pro, see
the prorated credit and charge before confirming, confirm, and find the charge on the
page and the plan fees on their monthly statement."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from payments.models import SellerPlan, SellerPlanCharge, SellerPlanChoice
from payments.revenue.plans import seller_plan_change
from tests.browser.test_operator_day import admin_log_in
from tests.browser.test_seller_after_refund import seller_log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "seller-plan.png"


def test_a_seller_switches_to_pro_and_sees_the_prorated_charge(page: Page, seller, shot) -> None:
    standard = SellerPlan.objects.create(
        name="Standard", currency="USD", monthly_fee_minor=0, commission_bps=1000,
        description="No monthly fee; 10% commission on each sale.",
    )  # fmt: skip
    SellerPlan.objects.create(
        name="Pro", currency="USD", monthly_fee_minor=2900, commission_bps=500,
        description="29.00 a month; 5% commission on each sale.",
    )  # fmt: skip
    seller_plan_change(seller=seller, plan=standard, by=seller.user)

    seller_log_in(page, seller.user.email)
    page.get_by_role("link", name="Plan", exact=True).click()
    expect(page.locator("main h1")).to_have_text("Your plan")
    expect(page.locator(".plan-current")).to_contain_text("Standard")

    page.locator("article", has_text="Pro").get_by_role(
        "button", name="Switch to this plan"
    ).click()
    confirm = page.locator(".plan-confirm")
    expect(confirm).to_contain_text("Switch to Pro?")
    expect(confirm).to_contain_text("Nothing has changed yet")
    expect(confirm).to_contain_text("Charged: Pro until the end of")
    assert not SellerPlanChoice.objects.filter(plan__name="Pro").exists()
    shot(page, "01-confirm")

    page.get_by_role("button", name="Confirm: switch to Pro").click()
    expect(page.locator("main")).to_contain_text("You are now on the Pro plan.")
    expect(page.locator(".plan-current")).to_contain_text("Pro")
    charge = SellerPlanCharge.objects.get(plan__name="Pro")
    shown = f"${charge.amount_minor // 100}.{charge.amount_minor % 100:02d}"
    expect(page.locator("#plan-charges ~ table, section:has(#plan-charges) table")).to_contain_text(
        shown
    )
    path = shot(page, "02-switched")
    README_SHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, README_SHOT)

    page.get_by_role("link", name="statements").click()
    statement = page.locator("article.statement")
    expect(statement).to_contain_text("Plan fees")
    expect(statement).to_contain_text("Plan fee — Pro,")
    expect(statement).to_contain_text(shown)
    shot(page, "03-statement")


def test_an_operator_moves_a_seller_to_a_plan_after_seeing_the_proration(
    page: Page, operator, seller, shot
) -> None:
    basic = SellerPlan.objects.create(name="Basic", currency="USD", monthly_fee_minor=1000)
    SellerPlan.objects.create(
        name="Partner", currency="USD", monthly_fee_minor=0, commission_bps=300, is_offered=False
    )
    seller_plan_change(seller=seller, plan=basic, by=seller.user)

    admin_log_in(page, operator.email)
    page.goto("/admin/payments/sellerplanchoice/")
    page.get_by_role("link", name="Change a seller's plan").click()
    page.get_by_label("Seller").select_option(label=seller.display_name)
    page.get_by_label("Plan").select_option(label="Partner (USD)")
    page.get_by_label("Reason for this change").fill("Negotiated terms")
    page.get_by_role("button", name="Show the prorated charge").click()
    expect(page.locator("#content-main")).to_contain_text("Credited back")
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == basic
    shot(page, "01-preview")

    page.get_by_role("button", name="Confirm the change").click()
    expect(page.locator(".messagelist")).to_contain_text("is now on the Partner plan")
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan.name == "Partner"
    shot(page, "02-done")
