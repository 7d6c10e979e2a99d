"""After the sale, in a real Chromium: each seller sees exactly their share and ships
(journey 3), then, the hold period later, an operator runs payouts from the admin and
each seller sees the payout, its breakdown and their dashboard move (journey 4).

The order is bought through the pages, as in the checkout journeys: a customer buys
two Blue Teapots from Acme (2 × 25.00) and a Harbour Print from Rival (10.00) and
pays with the local processor's success card. The platform keeps 10%: Acme is owed
45.00 and Rival 9.00. Time is moved forward with time-machine, which moves the
clock of the live server's thread too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import time_machine
from playwright.sync_api import Page, expect

from accounts.models import Seller
from marketplace.models import Order
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import Payout
from payments.payouts.holds import holds_release_due
from tests.browser.test_checkout_journeys import (
    CARD_PAYS,
    add_to_cart,
    check_out,
    expect_paid_order_page,
    fill_card,
)
from tests.browser.test_journeys import log_in, main_button
from tests.browser.test_operator_day import admin_log_in
from tests.factories import PASSWORD
from tests.money_helpers import enable_payouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHARES = {"Acme": "$45.00", "Rival": "$9.00"}


@pytest.fixture
def bought(page: Page, shop, seller, other_seller, customer, shot) -> Order:
    """The customer's paid order from both shops, bought through the pages."""
    enable_payouts(seller)
    enable_payouts(other_seller)
    teapot, print_ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot, 2)
    add_to_cart(page, print_)
    check_out(page)
    fill_card(page, CARD_PAYS)
    main_button(page, "Pay $60.00").click()
    order = Order.objects.get()
    expect_paid_order_page(page, order)
    return order


@contextmanager
def seller_page(open_context, seller: Seller) -> Iterator[Page]:
    """A separate browser (own cookies) with the seller logged in."""
    page = open_context().new_page()
    log_in(page, seller.user.email, PASSWORD)
    yield page
    page.close()


def open_dashboard(page: Page) -> None:
    page.get_by_role("banner").get_by_role("link", name="Earnings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Earnings")


def balance_card(page: Page, name: str):
    return page.locator(".balance-cards article").filter(
        has=page.get_by_role("heading", name=name, exact=True)
    )


def test_each_seller_sees_their_share_and_ships_and_the_customer_sees_it(
    page: Page, open_context, bought, seller, other_seller, shot
) -> None:
    for shop in (seller, other_seller):
        with seller_page(open_context, shop) as mine:
            name = shop.display_name
            open_dashboard(mine)
            expect(balance_card(mine, "Pending").locator(".price")).to_have_text(SHARES[name])
            expect(balance_card(mine, "Available").locator(".price")).to_have_text("$0.00")
            shot(mine, f"01-{name.lower()}-pending")

            mine.get_by_role("link", name="Orders to fulfil").first.click()
            card = mine.locator("main article").filter(has_text=f"Order #{bought.pk}")
            expect(card).to_contain_text(f"Your share: {SHARES[name]}")
            expect(card).to_contain_text("expected in the payout of")
            card.get_by_label("Tracking number (optional)").fill(f"TRACK-{name.upper()}")
            card.get_by_role("button", name=re.compile("Mark shipped")).click()
            expect(mine.get_by_role("status")).to_have_text(
                f"Order #{bought.pk} is marked shipped."
            )
            shot(mine, f"02-{name.lower()}-shipped")

    page.goto(f"/orders/{bought.pk}/")
    for name in SHARES:
        group = page.locator("main article").filter(has_text=name)
        expect(group.locator(".badge")).to_have_text("Shipped")
        expect(group).to_contain_text(f"tracking TRACK-{name.upper()}")
    shot(page, "03-customer-sees-shipped")

    assert seller_balance(seller=seller, currency="USD").pending == 4500
    assert seller_balance(seller=other_seller, currency="USD").pending == 900


def test_after_the_hold_an_operator_pays_both_sellers_and_they_see_the_breakdown(
    page: Page, open_context, bought, seller, other_seller, operator, shot
) -> None:
    paid_at = bought.paid_at
    assert paid_at is not None
    # Eight days later: past the default 7-day hold. The clock keeps ticking.
    with time_machine.travel(paid_at + timedelta(days=8), tick=True):
        holds_release_due()  # the hourly beat task
        with seller_page(open_context, seller) as acme:
            open_dashboard(acme)
            expect(balance_card(acme, "Pending").locator(".price")).to_have_text("$0.00")
            expect(balance_card(acme, "Available").locator(".price")).to_have_text("$45.00")
            shot(acme, "01-acme-available")

        page.context.clear_cookies()
        admin_log_in(page, operator.email)
        page.goto("/admin/payments/payoutrun/")
        page.get_by_role("link", name="Run payouts now").click()
        expect(page.get_by_role("heading", name="Would pay 2 payouts")).to_be_visible()
        preview = page.get_by_role("table", name="Payouts this run would create")
        expect(preview).to_contain_text("$45.00")
        expect(preview).to_contain_text("$9.00")
        shot(page, "02-operator-preview")
        page.get_by_role("button", name="Run payouts now").click()
        expect(page.locator(".messagelist")).to_contain_text("started: 1 chunk(s) of sellers")
        shot(page, "03-operator-ran")

        for shop in (seller, other_seller):
            name = shop.display_name
            payout = Payout.objects.get(seller=shop)
            assert payout.status == Payout.Status.PAID
            with seller_page(open_context, shop) as mine:
                open_dashboard(mine)
                expect(balance_card(mine, "Available").locator(".price")).to_have_text("$0.00")
                expect(balance_card(mine, "Paid out").locator(".price")).to_have_text(SHARES[name])
                expect(balance_card(mine, "Paid out")).to_contain_text(
                    f"{SHARES[name]} this month."
                )
                shot(mine, f"04-{name.lower()}-dashboard-paid")

                mine.get_by_role("link", name="Payouts", exact=True).click()
                mine.get_by_role("link", name=f"#{payout.pk}").click()
                expect(mine.get_by_role("heading", level=1)).to_have_text(
                    f"Payout #{payout.pk}: {SHARES[name]}"
                )
                expect(mine.locator("main .badge")).to_have_text("Paid")
                breakdown = mine.get_by_role("table", name="What it pays for")
                rows = breakdown.locator("tbody tr")
                expect(rows).to_have_count(1)  # one line each, released once
                expect(rows.first).to_contain_text(f"#{bought.pk}")
                expect(rows.first).to_contain_text(SHARES[name])
                shot(mine, f"05-{name.lower()}-payout-breakdown")

                mine.get_by_role("link", name=f"#{bought.pk}").first.click()
                expect(mine.locator("#when-paid")).to_contain_text(
                    f"Paid in payout #{payout.pk} on"
                )
                shot(mine, f"06-{name.lower()}-order-paid-out")

    assert seller_balance(seller=seller, currency="USD").paid_out == 4500
    assert seller_balance(seller=other_seller, currency="USD").paid_out == 900
    assert ledger_check().ok
