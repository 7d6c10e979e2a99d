"""Every refund that succeeds emails the customer and each seller in it once; a
declined refund request emails the customer and the seller once."""

from unittest import mock

import pytest

from marketplace.services.orders import CartItem, place_order
from payments.collection.refund_requests import refund_request_create, refund_request_decline
from payments.collection.refunds import (
    order_refund_by_operator,
    refund_create,
    refund_mark_succeeded,
)
from payments.models import SentNotification
from payments.reporting.notifications import refund_request_declined_notify, refund_succeeded_notify
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import pay_by_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(run, customer, seller, other_seller, mailoutbox):
    CommissionRuleFactory(percentage_bps=1000)
    teapot = ProductFactory(seller=seller, title="Teapot", price_minor=2000)
    print_ = ProductFactory(seller=other_seller, title="Print", price_minor=1000)
    placed = place_order(
        customer=customer, cart_items=[CartItem(teapot.pk, 1), CartItem(print_.pk, 1)]
    )
    paid = pay_by_card(run, placed)
    mailoutbox.clear()  # the receipt and "new order" emails
    return paid


def _to(mailoutbox):
    return sorted((m.to[0], m.subject) for m in mailoutbox)


def test_an_operator_refund_of_two_sellers_emails_the_customer_and_each_seller_once(
    run, order, operator, mailoutbox
):
    lines = {line.title: line.pk for line in order.lines.all()}

    result = run(
        order_refund_by_operator,
        order=order,
        line_amounts={lines["Teapot"]: 500, lines["Print"]: 1000},
        by=operator,
        reason="Late",
        confirmation="k",
    )

    assert result.refund.status == "pending"  # the task ran after it was returned
    assert _to(mailoutbox) == [
        ("customer@example.com", f"Your refund for order #{order.pk}"),
        ("other@example.com", f"A refund on order #{order.pk}"),
        ("seller@example.com", f"A refund on order #{order.pk}"),
    ]
    customer_mail = next(m for m in mailoutbox if m.to == ["customer@example.com"])
    assert "We have refunded $15.00 of your order" in customer_mail.body
    assert "1 × Teapot (Acme): $5.00" in customer_mail.body
    acme_mail = next(m for m in mailoutbox if m.to == ["seller@example.com"])
    assert "A refund of $5.00 was made on your part" in acme_mail.body
    assert "Your earnings go down by $4.50" in acme_mail.body
    assert "Print" not in acme_mail.body


def test_a_refund_retried_or_told_twice_sends_each_email_once(run, order, mailoutbox):
    refund = refund_create(order=order, amount_minor=300)
    run(refund_mark_succeeded, refund=refund)
    assert len(mailoutbox) == 3

    run(refund_mark_succeeded, refund=refund)  # the processor's event again
    assert refund_succeeded_notify(refund_id=refund.pk) == 0  # the task delivered twice

    assert len(mailoutbox) == 3
    assert set(
        SentNotification.objects.filter(key__startswith="refund:").values_list("key", flat=True)
    ) == {
        f"refund:{refund.pk}:customer",
        f"refund:{refund.pk}:seller:{order.seller_orders.first().seller_id}",
        f"refund:{refund.pk}:seller:{order.seller_orders.last().seller_id}",
    }


def test_a_send_that_fails_is_sent_by_the_retry_and_the_others_not_again(
    order, mailoutbox, django_capture_on_commit_callbacks
):
    refund = refund_create(order=order, amount_minor=300)
    with django_capture_on_commit_callbacks(execute=False):
        refund_mark_succeeded(refund=refund)  # the task is not run here
    from django.core import mail

    real = mail.send_mail
    calls = []

    def flaky(subject, body, sender, to, **kwargs):
        calls.append(to)
        if to == ["other@example.com"] and len(calls) <= 3:
            raise ConnectionError("SMTP down")
        return real(subject, body, sender, to, **kwargs)

    with mock.patch("django.core.mail.send_mail", flaky), pytest.raises(ConnectionError):
        refund_succeeded_notify(refund_id=refund.pk)
    sent_first = _to(mailoutbox)
    with mock.patch("django.core.mail.send_mail", flaky):
        refund_succeeded_notify(refund_id=refund.pk)

    assert len(sent_first) < 3
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        ["customer@example.com", "seller@example.com", "other@example.com"]
    )


def test_a_pending_or_failed_refund_emails_nobody(order, mailoutbox):
    refund = refund_create(order=order, amount_minor=300)

    assert refund_succeeded_notify(refund_id=refund.pk) == 0
    assert mailoutbox == []


def test_a_declined_request_emails_the_customer_and_the_seller_once(
    run, order, customer, seller, mailoutbox
):
    line = order.lines.get(title="Teapot")
    request = refund_request_create(customer=customer, order_line=line, reason="Chipped")

    run(refund_request_decline, request=request, by=seller.user, note="Sold as seen")
    assert refund_request_declined_notify(request_id=request.pk) == 0  # delivered twice

    assert _to(mailoutbox) == [
        ("customer@example.com", f"Your refund request for order #{order.pk}"),
        ("seller@example.com", f"Refund request on order #{order.pk} declined"),
    ]
    body = (
        mailoutbox[0].body if mailoutbox[0].to == ["customer@example.com"] else mailoutbox[1].body
    )
    assert "Why: Sold as seen" in body and "1 × Teapot" in body
