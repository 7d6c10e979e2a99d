"""A seller ships their part of an order and marks it delivered; the customer sees it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from payments.ledger.balances import seller_balance
from tests.browser.test_journeys import log_in
from tests.factories import PASSWORD, CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_seller_ships_and_delivers_and_the_customer_sees_it(
    page: Page, open_context, seller, other_seller, customer, shot
) -> None:
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 2500, 1), (other_seller, 1000, 1)], customer=customer)
    assert seller_balance(seller=seller, currency="USD").pending == 2250

    log_in(page, seller.user.email, PASSWORD)
    page.get_by_role("link", name="My shop").click()
    page.get_by_role("link", name="Orders to fulfil").click()
    expect(page).to_have_url(re.compile(r"/sell/orders/$"))
    card = page.locator("main article").filter(has_text=f"Order #{order.pk}")
    expect(card).to_contain_text("Your share: $22.50")
    shot(page, "01-to-ship")
    card.get_by_label("Tracking number (optional)").fill("1Z999AA1")
    card.get_by_role("button", name=re.compile("Mark shipped")).click()
    expect(page.get_by_role("status")).to_have_text(f"Order #{order.pk} is marked shipped.")

    page.get_by_role("link", name="On the way").click()
    card = page.locator("main article").filter(has_text=f"Order #{order.pk}")
    expect(card).to_contain_text("tracking 1Z999AA1")
    shot(page, "02-on-the-way")
    card.get_by_role("button", name=re.compile("Mark delivered")).click()
    expect(page.get_by_role("status")).to_have_text(f"Order #{order.pk} is marked delivered.")

    mine = open_context().new_page()
    log_in(mine, customer.email, PASSWORD)
    mine.goto(f"/orders/{order.pk}/")
    acme = mine.locator("main article").filter(has_text="Acme")
    expect(acme.locator(".badge")).to_have_text("Delivered")
    expect(acme).to_contain_text("tracking 1Z999AA1")
    rival = mine.locator("main article").filter(has_text="Rival")
    expect(rival.locator(".badge")).to_have_text("Paid")
    shot(mine, "03-customer-sees-delivered")
