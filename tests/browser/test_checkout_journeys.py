"""Buying journeys in a real Chromium: cart, checkout, card payment and refunds.

Payments go through the ``local`` processor with its test cards. Its events
are delivered by Celery tasks queued with ``transaction.on_commit``; with the
``eager_celery`` fixture and the live server's real transactions they run
in-process as soon as the request's transaction commits, so a page shown after
paying already reflects the processed webhook, as it would with a fast worker.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from accounts.models import User
from marketplace.models import CartItem, Order, Product
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import LedgerTransaction, PaymentAttempt, Refund, RefundRequest
from tests.browser.test_journeys import NEW_PASSWORD, account_menu, log_in, main_button
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CARD_PAYS = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_CONFIRMS = "4000 0025 0000 3155"


def cart_link(page: Page) -> Locator:
    return page.get_by_role("banner").get_by_role("link", name=re.compile(r"^Cart\b"))


def add_to_cart(page: Page, product: Product, quantity: int = 1) -> None:
    """Open the product's page and put ``quantity`` of it in the cart."""
    page.goto(product.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_have_text(product.title)
    page.locator("main").get_by_label("Quantity").fill(str(quantity))
    main_button(page, "Add to cart").click()
    expect(page.get_by_role("status")).to_have_text(f"“{product.title}” is in your cart.")


def fill_delivery_address(page: Page) -> None:
    page.get_by_label("Address", exact=True).fill("221 Larkspur Lane")
    page.get_by_label("City").fill("Portland")
    page.get_by_label("Postal code").fill("97201")
    page.get_by_label("Country").select_option(label="United States of America")


def fill_card(page: Page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM/YY)").fill("12/34")
    page.get_by_label("Security code").fill("123")


def check_out(page: Page) -> None:
    """From any page: open the cart, check out and give the delivery address."""
    cart_link(page).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    page.locator("main").get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    fill_delivery_address(page)
    main_button(page, "Continue to payment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Pay \$"))


def expect_paid_order_page(page: Page, order: Order) -> None:
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order #{order.pk}")
    expect(page.locator("#order-status")).to_contain_text("Thank you! Your payment was received")


def captures_of(order: Order) -> int:
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYMENT_CAPTURED, reference_id=str(order.pk)
    ).count()


def test_guest_fills_a_cart_signs_up_at_checkout_and_pays(
    page: Page, shop, seller, other_seller, shot
) -> None:
    teapot, print_ = shop

    add_to_cart(page, teapot, 2)
    expect(cart_link(page).locator(".badge")).to_have_text("2")
    shot(page, "01-added-teapots")
    add_to_cart(page, print_)
    expect(cart_link(page).locator(".badge")).to_have_text("3")

    cart_link(page).click()
    expect(page).to_have_url(re.compile(r"/cart/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    groups = page.locator("main article")
    expect(groups.get_by_role("heading", level=3)).to_have_text(["From Acme", "From Rival"])
    acme, rival = groups.nth(0), groups.nth(1)
    expect(acme.locator("tbody tr")).to_have_count(1)
    expect(acme.locator("tbody td").first).to_have_text("Blue Teapot")
    expect(acme.get_by_label("Quantity of Blue Teapot")).to_have_value("2")
    expect(acme.locator("tfoot tr")).to_have_text(re.compile(r"Subtotal from Acme\s*\$50\.00"))
    expect(rival.locator("tbody td").first).to_have_text("Harbour Print")
    expect(rival.get_by_label("Quantity of Harbour Print")).to_have_value("1")
    expect(rival.locator("tfoot tr")).to_have_text(re.compile(r"Subtotal from Rival\s*\$10\.00"))
    expect(page.locator(".cart-total")).to_have_text("Total: $60.00")
    shot(page, "02-cart")

    page.locator("main").get_by_role("link", name="Check out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/checkout/USD/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    shot(page, "03-asked-to-log-in")

    page.locator("main").get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    page.get_by_label("Email address").fill("maya.lind@example.com")
    page.get_by_label("Full name").fill("Maya Lind")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    shot(page, "04-sign-up")
    main_button(page, "Create account").click()

    # The sign-up page's ``next`` leads straight back to checkout.
    expect(page).to_have_url(re.compile(r"/checkout/USD/$"))
    expect(page.get_by_role("status")).to_have_text("Welcome! Your account is ready.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    # The visitor's cart came along into the new account.
    summary = page.get_by_role("article", name="Your order")
    expect(summary.get_by_role("heading", level=3)).to_have_text(["Acme", "Rival"])
    expect(summary.get_by_role("listitem")).to_have_text(
        ["2 × Blue Teapot $50.00", "1 × Harbour Print $10.00"]
    )
    expect(summary.locator(".cart-total")).to_have_text("Total: $60.00")
    expect(cart_link(page).locator(".badge")).to_have_text("3")
    expect(page.get_by_label("Full name")).to_have_value("Maya Lind")
    user = User.objects.get(email="maya.lind@example.com")
    assert dict(CartItem.objects.filter(user=user).values_list("product__title", "quantity")) == {
        "Blue Teapot": 2,
        "Harbour Print": 1,
    }

    fill_delivery_address(page)
    shot(page, "05-checkout")
    main_button(page, "Continue to payment").click()

    order = Order.objects.get()
    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/pay/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay $60.00")
    expect(page.get_by_text(f"Order #{order.pk} from 2 sellers.")).to_be_visible()
    # The ordered items left the cart.
    expect(cart_link(page).locator(".badge")).to_have_count(0)
    fill_card(page, CARD_PAYS)
    shot(page, "06-pay")
    main_button(page, "Pay $60.00").click()

    expect_paid_order_page(page, order)
    articles = page.locator("main article")
    expect(articles.get_by_role("heading", level=2)).to_have_text(["Acme Paid", "Rival Paid"])
    expect(page.get_by_text("Delivering to Maya Lind, 221 Larkspur Lane")).to_be_visible()
    shot(page, "07-thank-you")

    menu = account_menu(page)
    menu.locator("summary").click()
    menu.get_by_role("link", name="Your orders").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your orders")
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.get_by_role("cell")).to_have_text(
        [f"#{order.pk}", re.compile(r"\d+ \w+ \d{4}"), "Acme, Rival", "$60.00", "Paid"]
    )
    shot(page, "08-your-orders")

    assert Order.objects.count() == 1
    order.refresh_from_db()
    assert (order.customer, order.status, order.total_minor) == (user, Order.Status.PAID, 6000)
    assert (order.shipping_city, order.shipping_country) == ("Portland", "US")
    # Each seller is owed their gross less the 10% commission, nothing more.
    assert seller_balance(seller=seller, currency="USD").pending == 5000 - 500
    assert seller_balance(seller=other_seller, currency="USD").pending == 1000 - 100
    assert captures_of(order) == 1
    assert not CartItem.objects.filter(user=user).exists()
    teapot.refresh_from_db()
    print_.refresh_from_db()
    assert (teapot.stock, print_.stock) == (1, 2)
    assert ledger_check().ok


def test_a_declined_card_then_a_good_one_pays_the_order_once(
    page: Page, shop, customer, shot
) -> None:
    teapot, _ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot)
    check_out(page)
    order = Order.objects.get()

    fill_card(page, CARD_DECLINED)
    main_button(page, "Pay $25.00").click()

    card_number = page.get_by_label("Card number")
    expect(page.locator("#id_card_number + small.field-error")).to_have_text(
        "Your card was declined."
    )
    expect(card_number).to_have_attribute("aria-invalid", "true")
    expect(card_number).to_have_accessible_description(re.compile(r"^Your card was declined\."))
    expect(page.get_by_role("alert")).to_contain_text("Card number: Your card was declined.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay $25.00")
    shot(page, "01-declined")
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert order.payment_attempts.get().status == PaymentAttempt.Status.FAILED

    fill_card(page, CARD_PAYS)
    shot(page, "02-another-card")
    main_button(page, "Pay $25.00").click()

    expect_paid_order_page(page, order)
    shot(page, "03-paid")

    assert Order.objects.count() == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    # Two tries of the same order; the first one failed, the order was paid once.
    assert order.payment_attempts.count() == 2
    # The declined payment was cancelled at the processor when the new one began.
    assert order.payment_attempts.get(number=1).status == PaymentAttempt.Status.CANCELED
    assert captures_of(order) == 1
    assert ledger_check().ok


def test_the_card_that_asks_for_a_confirmation(page: Page, shop, customer, shot) -> None:
    _, print_ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, print_)
    check_out(page)
    order = Order.objects.get()

    fill_card(page, CARD_CONFIRMS)
    main_button(page, "Pay $10.00").click()

    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/pay/confirm/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your payment")
    expect(page.get_by_text(f"confirm the payment for order #{order.pk}")).to_be_visible()
    shot(page, "01-confirm")
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert order.payment_attempts.get().status == PaymentAttempt.Status.REQUIRES_ACTION

    main_button(page, "Confirm payment").click()

    expect_paid_order_page(page, order)
    shot(page, "02-paid")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.payment_attempts.count() == 1
    assert captures_of(order) == 1


def test_customer_asks_for_a_refund_and_the_seller_approves_it(
    page: Page, open_context, shop, customer, seller, shot
) -> None:
    teapot, print_ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot)
    add_to_cart(page, print_)
    check_out(page)
    fill_card(page, CARD_PAYS)
    main_button(page, "Pay $35.00").click()
    order = Order.objects.get()
    expect_paid_order_page(page, order)
    before = seller_balance(seller=seller, currency="USD").pending
    assert before == 2500 - 250

    ask = page.locator("main details").filter(has_text="Ask for a refund of Blue Teapot")
    expect(page.locator("main details")).to_have_count(2)
    ask.locator("summary").click()
    ask.get_by_label("Why would you like a refund?").fill("The lid arrived cracked.")
    shot(page, "01-ask-for-refund")
    ask.get_by_role("button", name="Send to Acme").click()

    expect(page.get_by_role("status")).to_have_text(
        "Your refund request for “Blue Teapot” was sent to the seller."
    )
    expect(page.get_by_text("Refund request: Waiting for the seller")).to_be_visible()
    shot(page, "02-refund-requested")
    request = RefundRequest.objects.get()
    assert request.reason == "The lid arrived cracked."
    assert request.order_line.title == "Blue Teapot"

    # The seller, in a browser of their own.
    shop_page = open_context().new_page()
    log_in(shop_page, seller.user.email, PASSWORD)
    shop_page.get_by_role("link", name="My shop").click()
    shop_page.get_by_role("link", name="Refund requests").click()
    expect(shop_page).to_have_url(re.compile(r"/sell/refunds/$"))
    expect(shop_page.get_by_role("heading", level=1)).to_have_text("Refund requests")
    row = shop_page.locator("main tbody tr").filter(has_text="Blue Teapot")
    expect(row.get_by_role("cell").nth(0)).to_have_text(f"#{order.pk}")
    expect(row).to_contain_text("The lid arrived cracked.")
    expect(row).to_contain_text("Waiting for the seller")
    shot(shop_page, "03-seller-requests")
    row.get_by_role("button", name="Approve refund").click()

    expect(shop_page.get_by_role("status")).to_have_text(
        "Refund approved and sent to the payment processor."
    )
    expect(row).to_contain_text("Approved")
    expect(row).to_contain_text("Refund succeeded")
    expect(row.get_by_role("button")).to_have_count(0)
    shot(shop_page, "04-seller-approved")

    # The refund took the seller's share back out of their pending earnings.
    shop_page.get_by_role("banner").get_by_role("link", name="Earnings").click()
    pending = shop_page.locator(".balance-cards article").filter(has_text="Pending")
    expect(pending.locator(".price")).to_have_text("$0.00")
    expect(shop_page.get_by_text("Earned in the last 30 days: $0.00")).to_be_visible()
    shop_page.get_by_role("link", name="Transactions").click()
    refund_row = shop_page.locator("main tbody tr").filter(has_text="Refund #")
    expect(refund_row).to_contain_text("-$22.50")
    shot(shop_page, "05-seller-balance-after-refund")

    page.reload()
    teapot_line = page.locator("main .summary li").filter(has_text="Blue Teapot").first
    expect(teapot_line).to_contain_text("refunded $25.00")
    expect(page.get_by_text("Refund request: Approved")).to_be_visible()
    expect(page.locator("main details")).to_have_count(1)
    expect(page.locator(".cart-total")).to_have_text("Total: $35.00 · refunded $25.00")
    expect(page.locator("#order-status")).to_contain_text("Partially refunded.")
    shot(page, "06-customer-sees-refund")

    refund = Refund.objects.get()
    assert (refund.status, refund.amount_minor) == (Refund.Status.SUCCEEDED, 2500)
    request.refresh_from_db()
    assert (request.status, request.refund) == (RefundRequest.Status.APPROVED, refund)
    line = refund.lines.get()
    assert line.order_line.title == "Blue Teapot"
    # The seller gives back exactly their part; the platform its commission.
    assert (line.seller_amount_minor, line.commission_amount_minor) == (2250, 250)
    after = seller_balance(seller=seller, currency="USD").pending
    assert before - after == line.seller_amount_minor
    order.refresh_from_db()
    assert (order.status, order.refunded_minor) == (Order.Status.PARTIALLY_REFUNDED, 2500)
    assert ledger_check().ok
