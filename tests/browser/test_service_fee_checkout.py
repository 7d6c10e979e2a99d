"""The service fee and volume tiers in a real Chromium: a customer sees the platform's
service fee and the total with it on the cart and the checkout before paying, pays it,
and finds it on the order page; an operator sets a rule's volume tiers as money in the
rule's admin page. Screenshots: docs/screenshots/checkout-service-fee.png and
admin-volume-tiers.png (copied from test-artifacts/screenshots/)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from marketplace.models import Order
from payments.checks import ledger_check
from tests.browser.test_checkout_journeys import (
    add_to_cart,
    cart_link,
    fill_card,
    fill_delivery_address,
)
from tests.browser.test_journeys import log_in, main_button
from tests.browser.test_operator_day import admin_log_in
from tests.factories import PASSWORD, CommissionRuleFactory, ServiceFeeFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_sees_the_service_fee_before_paying(page: Page, shot, shop, customer):
    ServiceFeeFactory(currency="USD", percentage_bps=250, fixed_fee_minor=30)
    teapot, print_ = shop  # $25.00 and $10.00: fee 2.5 % of $35.00 + $0.30 = $1.18
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot)
    add_to_cart(page, print_)
    cart_link(page).click()
    main = page.locator("main")
    expect(main.locator(".cart-service-fee")).to_have_text("$1.18")
    expect(main.locator(".cart-total")).to_contain_text("$36.18")
    main.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    expect(main.locator(".checkout-items-total")).to_have_text("$35.00")
    expect(main.locator(".checkout-service-fee")).to_have_text("$1.18")
    expect(main.locator(".cart-total")).to_contain_text("$36.18")
    fill_delivery_address(page)
    shot(page, "checkout-service-fee")
    cart_link(page).click()
    shot(page, "cart-service-fee")
    page.go_back()
    fill_delivery_address(page)
    main_button(page, "Continue to payment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Pay \$36\.18"))
    fill_card(page, "4242 4242 4242 4242")
    main_button(page, "Pay $36.18").click()
    order = Order.objects.get()
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    expect(page.locator(".order-service-fee")).to_contain_text("$1.18")
    expect(page.locator("#order-status")).to_contain_text("Thank you! Your payment was received")
    order.refresh_from_db()
    assert (order.service_fee_minor, order.total_minor, order.status) == (118, 3618, "paid")
    shot(page, "order-service-fee")
    assert ledger_check().ok, ledger_check().problems


def test_an_operator_sets_volume_tiers_as_money(page: Page, shot, operator):
    rule = CommissionRuleFactory(name="Platform 10%", percentage_bps=1000, currency="USD")
    admin_log_in(page, operator.email)
    page.goto(f"/admin/payments/commissionrule/{rule.pk}/change/")
    page.locator("input[name=tiers-0-sales_from]").fill("0")
    page.locator("input[name=tiers-0-sales_up_to]").fill("1,000.00")
    page.locator("input[name=tiers-0-percentage]").fill("10")
    page.get_by_label("Reason for this change").fill("Volume discounts from Q3")
    page.get_by_role("button", name="Save and continue editing").click()
    # One tier with a top and none after it: refused, on the page, nothing saved.
    expect(page.locator(".errorlist").first).to_contain_text("last tier has no upper end")
    assert not rule.tiers.exists()
    page.locator("input[name=tiers-1-sales_from]").fill("1,000.00")
    page.locator("input[name=tiers-1-percentage]").fill("7.5")
    page.locator("input[name=tiers-2-sales_from]").fill("10,000.00")
    page.locator("input[name=tiers-1-sales_up_to]").fill("10,000.00")
    page.locator("input[name=tiers-2-percentage]").fill("5")
    page.get_by_label("Reason for this change").fill("Volume discounts from Q3")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    assert list(rule.tiers.values_list("from_minor", "up_to_minor", "percentage_bps")) == [
        (0, 100_000, 1000),
        (100_000, 1_000_000, 750),
        (1_000_000, None, 500),
    ]
    expect(page.locator("input[name=tiers-1-sales_from]")).to_have_value("1000.00")
    shot(page, "admin-volume-tiers")
