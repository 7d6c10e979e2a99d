"""An operator runs a day from the console's home page, in a real Chromium, without
seeing a minor unit or editing a money field: find the failed payout, refund one
seller's part of an order through the confirmation page, approve a refund request,
freeze a seller, and read each object's history. The operator is staff in the
Operators group, not a superuser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from marketplace.models import OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_start
from payments.collection.refund_requests import refund_request_create
from payments.ledger.audit import audit_history
from payments.models import LocalAccount, Payout, PayoutPolicy, Refund, RefundRequest
from payments.payouts.runs import run_payouts
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor
from tests.browser.test_operator_day import admin_log_in
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# How a stored unit would show: "Amount minor: 900", "minor units", "10 bps".
RAW_UNITS = re.compile(r"_minor|\bminor\b(?! outlying)|\bbps\b|basis points")


def _paid(customer, items):
    order = place_order(customer=customer, cart_items=items)
    attempt = payment_start(order=order)
    LocalProcessor().payment_confirm(
        payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS
    )
    return order


@pytest.fixture
def day(settings, seller, other_seller, customer, category, eager_celery):
    """A two-seller order ($25.00 teapot from Acme, $10.00 print from Rival), a second
    Acme order whose customer asks for a refund, and Rival's payout refused by the
    processor (their account cannot receive transfers). 10% commission."""
    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000, name="Platform 10%")
    enable_payouts(seller)
    enable_payouts(other_seller)
    teapot = ProductFactory(seller=seller, category=category, title="Teapot", price_minor=2500)
    print_ = ProductFactory(seller=other_seller, category=category, title="Print", price_minor=1000)
    both = _paid(customer, [CartItem(teapot.pk, 1), CartItem(print_.pk, 1)])
    mug_order = _paid(customer, [CartItem(teapot.pk, 1)])
    refund_request_create(
        customer=customer,
        order_line=OrderLine.objects.get(order=mug_order),
        reason="Arrived chipped.",
    )
    LocalAccount.objects.filter(pk=other_seller.payout_account_id).update(details_submitted=False)
    run_payouts(sellers=[other_seller])
    failed = Payout.objects.get(seller=other_seller)
    assert failed.status == Payout.Status.FAILED
    return both, mug_order, failed


def test_an_operator_runs_a_day_from_the_home_dashboard(
    page: Page, operator, seller, other_seller, customer, day, shot, mailoutbox
) -> None:
    both, mug_order, failed = day
    admin_log_in(page, operator.email)
    expect(page.get_by_role("heading", name="Today and the last 7 days")).to_be_visible()
    shot(page, "01-dashboard")

    # 1. The failed payout: from its figure to its page, which says why.
    page.get_by_role("link", name=re.compile("failed today")).first.click()
    expect(page.locator("#result_list")).to_contain_text("cannot receive")
    page.locator("#result_list").get_by_role(
        "link", name=re.compile(f"Payout #{failed.pk}")
    ).click()
    expect(page.locator("#content")).to_contain_text("cannot receive")
    shot(page, "02-failed-payout")

    # 2. Refund Rival's part of the two-seller order, seeing the effect first.
    page.goto(f"/admin/marketplace/order/{both.pk}/change/")
    page.get_by_role("link", name=re.compile("Refund this seller's part")).last.click()
    effect = page.locator("table.refund-effect")
    expect(effect).to_contain_text("The customer gets back")
    expect(effect).to_contain_text("$10.00")  # the print
    expect(effect).to_contain_text("$9.00")  # Rival's share
    expect(effect).to_contain_text("$1.00")  # commission returned
    assert not Refund.objects.exists()  # nothing happens before the button
    shot(page, "03-refund-confirmation")
    page.get_by_label(re.compile("Reason")).fill("Print lost in the post")
    page.get_by_role("button", name="Refund $10.00").click()
    expect(page.locator(".messagelist")).to_contain_text("of $10.00 made")
    shot(page, "04-order-after-refund")
    refund = Refund.objects.get(order=both)
    assert (refund.status, refund.amount_minor) == (Refund.Status.SUCCEEDED, 1000)
    rival_part = SellerOrder.objects.get(order=both, seller=other_seller)
    assert rival_part.refunded_minor == 1000
    assert SellerOrder.objects.get(order=both, seller=seller).refunded_minor == 0
    # The order's history says who refunded what and why.
    expect(page.locator("#content")).to_contain_text("Print lost in the post")

    # 3. Approve the refund request from the dashboard's queue.
    page.goto("/admin/")
    page.get_by_role("link", name=re.compile("waiting for a decision")).click()
    expect(page.locator("#result_list")).to_contain_text("Arrived chipped.")
    page.locator("#result_list").get_by_role("link", name="Approve…").click()
    expect(page.locator("table.refund-effect")).to_contain_text("$25.00")
    page.get_by_label(re.compile("Reason")).fill("Photo shows the chip")
    page.get_by_role("button", name=re.compile(r"Approve and refund \$25\.00")).click()
    expect(page.locator(".messagelist")).to_contain_text("approved")
    shot(page, "05-request-approved")
    assert RefundRequest.objects.get().status == RefundRequest.Status.APPROVED
    assert Refund.objects.get(order=mug_order).status == Refund.Status.SUCCEEDED

    # 4. Freeze Acme, with a reason.
    page.goto(f"/admin/accounts/seller/{seller.pk}/change/")
    page.get_by_role("link", name="Freeze payouts…").first.click()
    page.get_by_label(re.compile("Reason")).fill("Chargeback review")
    page.get_by_role("button", name="Freeze payouts").click()
    expect(page.locator(".messagelist")).to_contain_text("froze")
    assert PayoutPolicy.objects.get(seller=seller).frozen

    # 5. The history on the seller's page: who froze them, when and why.
    history = page.locator("table.history")
    expect(history).to_contain_text("Chargeback review")
    expect(history).to_contain_text(operator.email)
    shot(page, "06-seller-frozen")
    assert [r.action for r in audit_history(seller)] == ["freeze"]

    # Every refund emailed the customer and the seller, once.
    subjects = sorted((m.to[0], m.subject) for m in mailoutbox if "efund" in m.subject)
    recipients = [to for to, _ in subjects]
    assert recipients.count(customer.email) == 2
    assert recipients.count(seller.user.email) == 1
    assert recipients.count(other_seller.user.email) == 1

    # Never a minor unit: no page showed a raw amount label.
    for path in (
        "/admin/",
        f"/admin/marketplace/order/{both.pk}/change/",
        f"/admin/payments/payout/{failed.pk}/change/",
        f"/admin/accounts/seller/{seller.pk}/change/",
    ):
        page.goto(path)
        text = page.locator("#content").inner_text().lower()
        assert not RAW_UNITS.search(text), (path, RAW_UNITS.search(text))
