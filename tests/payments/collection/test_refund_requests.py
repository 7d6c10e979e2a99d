import pytest
from django.urls import reverse

from marketplace.kernel.errors import Conflict, InvalidRequest, InvalidState, NotFound
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.refund_requests import (
    refund_request_approve,
    refund_request_create,
    refund_request_decline,
)
from payments.ledger.balances import seller_balance
from payments.models import Refund, RefundRequest
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.money_helpers import pay_by_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(run, customer, seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    mine = ProductFactory(seller=seller, title="Teapot", price_minor=2000, stock=2)
    theirs = ProductFactory(seller=other_seller, title="Print", price_minor=1000, stock=2)
    order = place_order(
        customer=customer, cart_items=[CartItem(mine.pk, 1), CartItem(theirs.pk, 1)]
    )
    return pay_by_card(run, order)


def test_the_seller_approves_and_the_refund_reaches_the_ledger(run, paid, customer, seller):
    line = paid.lines.get(title="Teapot")
    request = refund_request_create(customer=customer, order_line=line, reason="Chipped spout")

    refund = run(refund_request_approve, request=request, by=seller.user)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED and refund.amount_minor == 2000
    assert seller_balance(seller=seller, currency="USD").pending == 0
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (RefundRequest.Status.APPROVED, seller.user)
    assert ledger_check().ok


def test_an_operator_can_decide_but_another_seller_cannot(
    run, paid, customer, operator, other_seller
):
    line = paid.lines.get(title="Teapot")
    request = refund_request_create(customer=customer, order_line=line, reason="Late")

    with pytest.raises(NotFound):
        refund_request_approve(request=request, by=other_seller.user)
    refund_request_decline(request=request, by=operator, note="Delivered on time")

    request.refresh_from_db()
    assert request.status == RefundRequest.Status.DECLINED
    assert not Refund.objects.exists()
    with pytest.raises(InvalidState):
        refund_request_approve(request=request, by=operator)


def test_bad_requests_are_refused(paid, customer):
    line = paid.lines.get(title="Teapot")
    with pytest.raises(InvalidRequest):
        refund_request_create(customer=customer, order_line=line, reason="  ")
    with pytest.raises(NotFound):
        refund_request_create(customer=UserFactory(), order_line=line, reason="Not mine")
    refund_request_create(customer=customer, order_line=line, reason="Broken")
    with pytest.raises(Conflict):
        refund_request_create(customer=customer, order_line=line, reason="Again")
    assert RefundRequest.objects.count() == 1


def test_through_the_pages(run, client, paid, customer, seller):
    line = paid.lines.get(title="Teapot")
    client.force_login(customer)
    client.post(
        reverse("marketplace:refund_request_new", args=[paid.pk, line.pk]),
        {"reason": "Wrong colour"},
    )
    request = RefundRequest.objects.get()
    page = client.get(reverse("marketplace:order_detail", args=[paid.pk])).content.decode()
    assert "Refund request: Waiting for the seller" in page

    client.force_login(seller.user)
    listing = client.get(reverse("marketplace:seller_refund_requests")).content.decode()
    assert "Wrong colour" in listing
    run(client.post, reverse("marketplace:seller_refund_request_approve", args=[request.pk]))

    assert Refund.objects.get().status == Refund.Status.SUCCEEDED
    client.force_login(SellerFactory().user)
    response = client.post(reverse("marketplace:seller_refund_request_approve", args=[request.pk]))
    assert response.status_code == 404


def test_the_seller_page_refuses_a_refund_of_a_disputed_payment(
    run, paid, customer, seller, client
):
    """Money safety, finding 3, on the seller's page: a clear message, nothing refunded."""
    from payments.collection.disputes import dispute_opened

    request = refund_request_create(
        customer=customer, order_line=paid.lines.get(title="Teapot"), reason="Broken"
    )
    attempt = paid.payment_attempts.get(status="succeeded")
    dispute_opened(
        processor_name="local",
        processor_dispute_id="dp_page",
        payment_id=attempt.processor_payment_id,
        amount_minor=paid.total_minor,
    )
    client.force_login(seller.user)

    response = run(
        client.post,
        reverse("marketplace:seller_refund_request_approve", args=[request.pk]),
        follow=True,
    )

    assert "This payment is disputed" in response.content.decode()
    assert not Refund.objects.exists()
    request.refresh_from_db()
    assert request.status == RefundRequest.Status.REQUESTED
    assert ledger_check().ok


def test_a_request_waiting_on_a_line_refunded_in_full_another_way_is_closed(
    run, paid, customer, seller, operator, mailoutbox
):
    from payments.collection.refunds import refund_create, refund_mark_succeeded
    from payments.ledger.audit import audit_history

    teapot, print_ = paid.lines.get(title="Teapot"), paid.lines.get(title="Print")
    asked = refund_request_create(customer=customer, order_line=teapot, reason="Chipped")
    other = refund_request_create(customer=customer, order_line=print_, reason="Faded")

    # Half of the teapot first: the request still has something to decide.
    run(
        refund_mark_succeeded,
        refund=refund_create(order=paid, order_line=teapot, amount_minor=1000),
    )
    asked.refresh_from_db()
    assert asked.status == RefundRequest.Status.REQUESTED
    mailoutbox.clear()
    # Then the rest, by an operator: nothing is left to decide, and no one is told
    # the request was declined.
    run(refund_mark_succeeded, refund=refund_create(order=paid, order_line=teapot))

    asked.refresh_from_db()
    other.refresh_from_db()
    assert asked.status == RefundRequest.Status.REFUNDED
    assert "Refunded in full by refund #" in asked.decision_note
    assert other.status == RefundRequest.Status.REQUESTED  # its line was not refunded
    assert [(r.action, r.actor) for r in audit_history(asked)] == [("closed", None)]
    assert not any("declined" in m.subject.lower() for m in mailoutbox)
    with pytest.raises(InvalidState):
        refund_request_approve(request=asked, by=operator)
