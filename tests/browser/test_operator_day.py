"""An operator runs a day of the marketplace from the admin alone, in a real Chromium:
approve a refund, adjust a commission rule, run payouts, read the revenue report and
reconcile with the processor. The operator is staff in the Operators group, not a
superuser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from marketplace.models import OrderLine
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_start
from payments.collection.refund_requests import refund_request_create
from payments.models import CommissionRule, Payout, PayoutRun, Refund
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor
from tests.factories import PASSWORD, CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def yesterday(settings, seller, customer, category, eager_celery):
    """Two orders paid by card through the local processor; the customer asked for a
    refund of the second. Earnings are released at once (hold of 0 days)."""
    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000, name="Platform 10%")
    enable_payouts(seller)
    mug = ProductFactory(seller=seller, category=category, title="Blue Mug", price_minor=4000)
    orders = []
    for _ in range(2):
        order = place_order(customer=customer, cart_items=[CartItem(mug.pk, 1)])
        attempt = payment_start(order=order)
        LocalProcessor().payment_confirm(
            payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS
        )
        orders.append(order)
    line = OrderLine.objects.get(order=orders[1])  # fresh: the order is paid now
    refund_request_create(customer=customer, order_line=line, reason="Arrived chipped.")
    return orders


def admin_log_in(page: Page, email: str) -> None:
    page.goto("/admin/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Run the marketplace")).to_be_visible()


def run_action(page: Page, action: str, reason: str = "") -> None:
    page.locator("#action-toggle").check()
    page.locator("select[name=action]").select_option(action)
    if reason:
        page.locator("input[name=reason]").fill(reason)
    page.get_by_role("button", name="Go").click()


def test_an_operator_runs_a_day_from_the_admin(page: Page, operator, yesterday, shot) -> None:
    assert not operator.is_superuser
    admin_log_in(page, operator.email)
    shot(page, "01-admin-home")

    # 1. Approve the refund request through its confirmation page: the refund goes to
    #    the processor.
    page.get_by_role("link", name="Refund requests", exact=True).click()
    expect(page.locator("#result_list")).to_contain_text("Arrived chipped.")
    run_action(page, "approve")
    expect(page.locator("table.refund-effect")).to_contain_text("$40.00")
    page.get_by_label(re.compile("Reason")).fill("Photo shows the chip")
    page.get_by_role("button", name=re.compile(r"Approve and refund")).click()
    expect(page.locator(".messagelist")).to_contain_text("approved")
    shot(page, "02-refund-approved")
    assert Refund.objects.get().status == Refund.Status.SUCCEEDED

    # 2. Adjust the commission rule, seeing what it takes before saving.
    page.goto("/admin/payments/commissionrule/")
    page.get_by_role("link", name="Platform 10%").click()
    expect(page.locator(".field-preview")).to_contain_text(
        "On a $49.99 line: commission $5.00, seller $44.99"
    )
    page.get_by_label("Percentage (%)").fill("12")
    page.get_by_label("Reason for this change").fill("Card fees went up")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".field-history")).to_contain_text("Card fees went up")
    expect(page.locator(".field-preview")).to_contain_text("commission $6.00, seller $43.99")
    shot(page, "03-rule-adjusted")
    assert CommissionRule.objects.get().percentage_bps == 1200

    # 3. Run payouts: a dry-run preview first, then the run.
    page.goto("/admin/payments/payoutrun/")
    page.get_by_role("link", name="Run payouts now").click()
    expect(page.get_by_role("heading", name="Would pay 1 payout")).to_be_visible()
    expect(page.get_by_role("table", name="Payouts this run would create")).to_contain_text(
        "$36.00"
    )  # 72.00 earned − 36.00 refunded
    shot(page, "04-payout-preview")
    assert not PayoutRun.objects.exists()
    page.get_by_role("button", name="Run payouts now").click()
    expect(page.locator(".messagelist")).to_contain_text("started: 1 chunk(s) of sellers")
    shot(page, "05-payout-run")
    assert Payout.objects.get().status == Payout.Status.PAID

    # 4. The day's revenue: 80.00 sold, 40.00 refunded, 4.00 commission kept.
    page.goto("/admin/")
    page.get_by_role("link", name="Revenue report", exact=True).click()
    expect(page.locator("tfoot")).to_contain_text("$80.00")
    expect(page.locator("tfoot")).to_contain_text("$40.00")
    shot(page, "06-revenue")

    # 5. Reconcile the ledger with the processor: nothing differs.
    page.goto("/admin/")
    page.get_by_role("link", name="Reconciliation", exact=True).click()
    expect(page.get_by_text("No differences")).to_be_visible()
    shot(page, "07-reconciliation")
