"""The lean checkout's progressive enhancement, in a real Chromium.

With script: "Add to cart" posts with htmx (the message and the header's count come
back, the page stays); the order page polls its live status while the payment is
confirmed, and swaps in the paid page when the worker has processed the event.
Without script: the same form posts and the product page comes back with the
message; the order page offers a link to look again.

The processor's events are queued, not run: the test runs them, as the worker would,
while the browser waits on the order page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from marketplace.models import Order
from marketplace.services.orders import CartItem, ShippingAddress, place_order
from payments.collection.checkout import local_card_pay, payment_start
from tests.browser.test_checkout_journeys import cart_link
from tests.browser.test_journeys import log_in, main_button
from tests.factories import PASSWORD, CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHIPPING = ShippingAddress(
    name="Maya Lind", line1="221 Larkspur Lane", city="Portland", postal_code="97201", country="US"
)


@pytest.fixture
def queued(monkeypatch):
    """Tasks queued after commit are kept (no worker); ``run()`` runs them."""
    from marketplace.kernel import task_queue

    tasks: list = []
    monkeypatch.setattr(
        task_queue, "_publish", lambda task, args, countdown=None: tasks.append((task, args))
    )

    def run() -> int:
        ran = 0
        while tasks:
            task, args = tasks.pop(0)
            task.apply(args=args, throw=True)
            ran += 1
        return ran

    return run


@pytest.fixture
def teapot(seller, category):
    CommissionRuleFactory(percentage_bps=1000)
    return ProductFactory(
        seller=enable_payouts(seller),
        category=category,
        title="Blue Teapot",
        slug="blue-teapot",
        price_minor=2500,
        stock=5,
    )


def paid_at_the_processor(customer, teapot) -> Order:
    """An order whose card the processor accepted; its event is not processed yet."""
    order = place_order(customer=customer, cart_items=[CartItem(teapot.pk, 1)], shipping=SHIPPING)
    local_card_pay(attempt=payment_start(order=order), card_number="4242424242424242")
    return order


def test_with_script_the_cart_fills_in_place_and_the_order_page_sees_the_payment_land(
    page: Page, teapot, customer, queued
) -> None:
    log_in(page, customer.email, PASSWORD)
    page.goto(teapot.get_absolute_url())
    main_button(page, "Add to cart").click()

    expect(page.get_by_role("status")).to_have_text("“Blue Teapot” is in your cart.")
    expect(cart_link(page).locator(".badge")).to_have_text("1")
    expect(page).to_have_url(re.compile(r"/products/blue-teapot/$"))

    order = paid_at_the_processor(customer, teapot)
    page.goto(f"/orders/{order.pk}/")
    status = page.locator("#order-status")
    expect(status).to_contain_text("confirming it")
    assert queued() >= 2  # the worker: the processor's event delivered, then processed

    # The first look is 1 s after the page loaded, then 1 s, 2 s...: well within 5 s.
    expect(status).to_contain_text("Thank you! Your payment was received")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{order.pk}")
    expect(page.locator("main")).to_have_count(1)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID


def test_without_script_the_form_posts_and_the_order_page_offers_to_look_again(
    browser, live_server, teapot, customer, queued
) -> None:
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    try:
        page = context.new_page()
        log_in(page, customer.email, PASSWORD)
        page.goto(teapot.get_absolute_url())
        main_button(page, "Add to cart").click()

        expect(page).to_have_url(re.compile(r"/products/blue-teapot/$"))
        expect(page.get_by_role("status")).to_have_text("“Blue Teapot” is in your cart.")
        expect(cart_link(page).locator(".badge")).to_have_text("1")

        order = paid_at_the_processor(customer, teapot)
        page.goto(f"/orders/{order.pk}/")
        expect(page.locator("#order-status")).to_contain_text("confirming it")
        look_again = page.get_by_role("link", name="Refresh to see the latest status")
        expect(look_again).to_be_visible()
        queued()
        look_again.click()
        expect(page.locator("#order-status")).to_contain_text(
            "Thank you! Your payment was received"
        )
    finally:
        context.close()
