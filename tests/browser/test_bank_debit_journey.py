"""Paying by bank debit in a real Chromium: the payment page's IBAN form, the order
"Payment processing" for days, then paid when the debit settles (the live status
shows it), or "Payment failed — order cancelled" when the bank refuses it.

The debit is settled by calling the local processor's service, as Celery beat does
every minute (``local_debits_settle``), with a time a few days on; the events it
emits are processed in-process (``eager_celery``) as with a fast worker.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from marketplace.models import Order, Product
from payments.checks import ledger_check
from payments.models import LedgerTransaction, PaymentAttempt
from payments.processors.local import local_debits_settle
from tests.browser.conftest import SCREENSHOT_DIR
from tests.browser.test_checkout_journeys import add_to_cart, check_out
from tests.browser.test_journeys import account_menu, log_in, main_button
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IBAN_PAYS = "AT61 1904 3002 3457 3201"
IBAN_FAILS = "AT86 1904 3002 3547 3202"
DOCS = SCREENSHOT_DIR.parents[1] / "docs" / "screenshots"


def pay_by_debit(page: Page, iban: str, total: str) -> None:
    debit = page.locator("main section", has=page.get_by_role("heading", name="Bank debit (IBAN)"))
    debit.get_by_label("IBAN").fill(iban)
    debit.get_by_label("I authorise the marketplace to debit this account").check()
    main_button(page, f"Pay {total} by bank debit").click()


def open_orders(page: Page) -> None:
    menu = account_menu(page)
    menu.locator("summary").click()
    menu.get_by_role("link", name="Your orders").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your orders")


def settle_due_debits() -> int:
    return local_debits_settle(now=timezone.now() + timedelta(days=4))


def test_a_customer_pays_by_bank_debit_sees_it_processing_then_paid(
    page: Page, shop, customer, shot
) -> None:
    teapot, _ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot)
    check_out(page)
    order = Order.objects.get()

    expect(page.get_by_role("heading", name="Card", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Bank debit (IBAN)")).to_be_visible()
    expect(page.get_by_role("table").filter(has_text="AT61")).to_contain_text("pays after")
    # A mistyped IBAN: the field's own error, nothing paid.
    pay_by_debit(page, "AT61 1904 3002 3457 3209", "$25.00")
    expect(page.locator("#id_debit-iban + small.field-error")).to_have_text(
        re.compile("Enter a valid IBAN")
    )
    expect(page.get_by_role("textbox", name="IBAN")).to_have_attribute("aria-invalid", "true")
    shot(page, "01-iban-error")

    pay_by_debit(page, IBAN_PAYS, "$25.00")

    expect(page).to_have_url(re.compile(rf"/orders/{order.pk}/$"))
    status = page.locator("#order-status")
    expect(status).to_contain_text("Payment processing — bank debits take a few days")
    path = shot(page, "02-processing")
    shutil.copyfile(path, DOCS / "bank-debit-processing.png")
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert not LedgerTransaction.objects.exists()
    assert Product.objects.get(pk=teapot.pk).stock == 2  # reserved

    # Days later: the customer's orders say it is still processing; the bank settles.
    open_orders(page)
    expect(page.locator("main tbody tr")).to_contain_text("Payment processing")
    shot(page, "03-your-orders-processing")
    assert settle_due_debits() == 1

    page.locator("main").get_by_role("link", name=f"#{order.pk}").click()
    expect(status).to_contain_text("Thank you! Your payment was received")
    shot(page, "04-paid")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.payment_attempts.get().payment_method_type == "bank_debit"
    assert ledger_check().ok


def test_a_failing_bank_debit_cancels_the_order_and_says_so(
    page: Page, shop, customer, shot, mailoutbox
) -> None:
    teapot, _ = shop
    log_in(page, customer.email, PASSWORD)
    add_to_cart(page, teapot)
    check_out(page)
    order = Order.objects.get()

    pay_by_debit(page, IBAN_FAILS, "$25.00")
    status = page.locator("#order-status")
    expect(status).to_contain_text("Payment processing")

    # Off the order page (its live status polls) while the test settles the debit:
    # SQLite's test database takes one writer at a time.
    open_orders(page)
    assert settle_due_debits() == 1
    page.reload()
    expect(page.locator("main tbody tr")).to_contain_text("Payment failed — order cancelled")
    shot(page, "01-your-orders")

    page.locator("main").get_by_role("link", name=f"#{order.pk}").click()
    expect(status).to_contain_text("Payment failed — order cancelled.")
    expect(status).to_contain_text("insufficient funds")
    path = shot(page, "02-failed")
    shutil.copyfile(path, DOCS / "order-bank-debit-failed.png")

    order.refresh_from_db()
    attempt = order.payment_attempts.get()
    assert order.status == Order.Status.CANCELLED
    assert attempt.status == PaymentAttempt.Status.FAILED
    assert Product.objects.get(pk=teapot.pk).stock == 3
    assert not LedgerTransaction.objects.exists()
    assert [m.subject for m in mailoutbox] == [f"Your payment for order #{order.pk} failed"]
