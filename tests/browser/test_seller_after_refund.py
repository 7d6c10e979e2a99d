"""A seller reads their pages after a refund that came after the payout, in a real
Chromium: every page tells the same story as the ledger (the sale was paid out, then
refunded; the seller owes it; the next payout takes it), and the payout shows the bank
account's last four digits, its arrival date and what it was made of."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from payments.ledger.balances import seller_balance
from tests.factories import PASSWORD
from tests.marketplace.seller_scenarios import refund_after_payout

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def seller_log_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/?next=/sell/")
    page.locator("#id_username").fill(email)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_password").press("Enter")
    expect(page).to_have_url(re.compile("/sell/$"))


def test_a_seller_reads_a_refund_that_came_after_the_payout(page: Page, run, seller, shot) -> None:
    story = refund_after_payout(run, seller)
    payout = story.payout
    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.available, balance.pending) == (-3150, 6075)  # owes 31.50

    seller_log_in(page, seller.user.email)
    # The dashboard explains the debt instead of showing a bare negative balance.
    expect(page.locator("main")).to_contain_text(
        f"You owe $31.50 from a refund after payout #{payout.pk}"
    )
    shot(page, "01-dashboard-debt")

    # The sale's line tells its whole story.
    page.goto(f"/sell/orders/{story.first.seller_orders.get().pk}/")
    expect(page.locator("main")).to_contain_text(f"Paid in payout #{payout.pk}")
    expect(page.locator("main")).to_contain_text(
        "$31.50 refunded after that, taken from your next payout"
    )
    expect(page.locator("main")).not_to_contain_text("Nothing to pay")
    shot(page, "02-sale-story")

    # Transactions: one row for the payout, and balances that end where the ledger is.
    page.goto("/sell/transactions/")
    rows = page.locator("main table tbody tr")
    payout_rows = rows.filter(has=page.get_by_role("link", name=f"Payout #{payout.pk} paid"))
    expect(payout_rows).to_have_count(1)
    expect(rows.first).to_contain_text("-$31.50")  # the newest row: available after it
    shot(page, "03-transactions")

    # The payout: bank account, arrival date, and gross − fees − refunds = net.
    page.goto(f"/sell/payouts/{payout.pk}/")
    main = page.locator("main")
    expect(main).to_contain_text("6789")
    payout.refresh_from_db()
    assert payout.arrival_on is not None
    expect(main).to_contain_text(str(payout.arrival_on.day))
    expect(main).to_contain_text("$31.50")
    shot(page, "04-payout")
