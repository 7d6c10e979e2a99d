"""Refunds from the operator console: the confirmation page shows the effect first
(customer gets, seller loses, commission returned, paid out already?), needs a
reason, refunds exactly once, refuses what it must and changes nothing then."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from marketplace.models import Order, OrderLine
from marketplace.services.orders import CartItem, place_order
from payments.collection.disputes import dispute_opened
from payments.collection.refund_requests import refund_request_create
from payments.collection.refunds import (
    order_refund_by_operator,
    refund_create,
    refund_mark_succeeded,
)
from payments.ledger.audit import audit_history
from payments.models import AuditRecord, CommissionRule, LedgerTransaction, Refund, RefundRequest
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory, ProductFactory, ServiceFeeFactory, UserFactory
from tests.money_helpers import enable_payouts, paid_order, pay_by_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(run, customer, seller, other_seller):
    """Paid by card, 10% + $0.30 a line: Acme 2 × $25.00 (commission $5.30) and
    1 × $10.99 ($1.40), Rival 1 × $18.00 ($2.10); $78.99 in all."""
    CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")
    products = [
        (ProductFactory(seller=seller, title="Teapot", price_minor=2500, stock=5), 2),
        (ProductFactory(seller=seller, title="Cup", price_minor=1099, stock=5), 1),
        (ProductFactory(seller=other_seller, title="Print", price_minor=1800, stock=5), 1),
    ]
    placed = place_order(
        customer=customer, cart_items=[CartItem(p.pk, quantity) for p, quantity in products]
    )
    return pay_by_card(run, placed)


def _url(order):
    return reverse("admin:marketplace_order_refund", args=[order.pk])


def _line(order, title):
    return order.lines.get(title=title)


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _state(order):
    """Everything a refund would change."""
    order.refresh_from_db()
    return (
        order.refunded_minor,
        list(OrderLine.objects.filter(order=order).values_list("refunded_minor", flat=True)),
        Refund.objects.count(),
        AuditRecord.objects.filter(action="refund").count(),
    )


def _confirm_data(page, reason="Arrived broken"):
    data = dict(page.context["hidden_amounts"])
    data.update(reason=reason, confirmation=page.context["form"]["confirmation"].value())
    return data


def _text(page):
    return re.sub(r"\s+", " ", page.content.decode())


@pytest.fixture
def books(seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 2)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=500))
    return order


def test_the_confirmation_page_shows_what_refunding_a_sellers_part_does(
    operator_client, order, seller
):
    seller_order = order.seller_orders.get(seller=seller)

    page = operator_client.get(_url(order), {"seller_order": seller_order.pk})

    assert page.status_code == 200
    preview = page.context["preview"]
    assert (preview.amount_minor, preview.seller_minor, preview.commission_minor) == (
        6099,
        4470 + 959,
        530 + 140,
    )
    html = _text(page)
    assert "The customer gets back</th><td>$60.99" in html
    assert "lose</th><td>$54.29" not in html  # one seller: "loses"
    assert "The seller loses</th><td>$54.29" in html
    assert "Commission returned by the platform</th><td>$6.70" in html
    # Per line: customer gets, seller loses, commission returned, left after.
    assert "2 × Teapot</td> <td>$50.00</td> <td>$44.70</td> <td>$5.30</td> <td>$0.00</td>" in html
    assert "1 × Cup</td> <td>$10.99</td> <td>$9.59</td> <td>$1.40</td> <td>$0.00</td>" in html
    assert "Print" not in html
    assert "pending earnings (still in hold); not paid out yet" in html
    assert "Nothing has been refunded yet" in html
    assert Refund.objects.count() == 0


def test_the_confirmation_page_shows_chosen_quantities_and_amounts_of_two_sellers(
    operator_client, order
):
    teapot, cup, print_ = (_line(order, t) for t in ("Teapot", "Cup", "Print"))

    page = operator_client.get(
        _url(order),
        {f"qty-{teapot.pk}": "1", f"amount-{cup.pk}": "", f"amount-{print_.pk}": "9.00"},
    )

    assert page.status_code == 200
    preview = page.context["preview"]
    assert preview.line_amounts == {teapot.pk: 2500, print_.pk: 900}
    # Pro rata within each line: 2500 of Teapot is 265 commission + 2235 share; 900 of
    # Print is 105 + 795.
    assert (preview.amount_minor, preview.seller_minor, preview.commission_minor) == (
        3400,
        2235 + 795,
        265 + 105,
    )
    html = _text(page)
    assert "The sellers lose</th><td>$30.30" in html
    assert "Acme in all</th> <td>$25.00</td> <td>$22.35</td> <td>$2.65</td>" in html
    assert "Rival in all</th> <td>$9.00</td> <td>$7.95</td> <td>$1.05</td>" in html
    assert "Total</th> <td><strong>$34.00</strong></td> <td><strong>$30.30</strong></td>" in html


def test_no_minor_unit_is_shown_on_the_confirmation_page(operator_client, order, seller):
    page = operator_client.get(
        _url(order), {"seller_order": order.seller_orders.get(seller=seller).pk}
    )

    html = page.content.decode()
    assert "_minor" not in html
    for raw in ("6099", "5429", "670", "7899", "4470"):
        assert not re.search(rf"\b{raw}\b", html), raw


def test_confirming_refunds_exactly_once_even_when_posted_twice(
    run, operator_client, operator, order, seller, customer
):
    seller_order = order.seller_orders.get(seller=seller)
    page = operator_client.get(_url(order), {"seller_order": seller_order.pk})
    data = _confirm_data(page)

    first = run(operator_client.post, _url(order), data)
    second = run(operator_client.post, _url(order), data)

    assert first.status_code == second.status_code == 302
    refund = Refund.objects.get()
    assert (refund.amount_minor, refund.status, refund.requested_by) == (
        6099,
        "succeeded",
        operator,
    )
    assert _messages(second)[-1] == (
        f"This refund was confirmed already (refund #{refund.pk} of $60.99); "
        "nothing more was refunded."
    )
    [record] = audit_history(Order.objects.get(pk=order.pk))
    assert (record.action, record.actor, record.reason, record.via) == (
        "refund",
        operator,
        "Arrived broken",
        "admin",
    )
    order.refresh_from_db()
    assert (order.refunded_minor, order.status) == (6099, "partially_refunded")


def test_two_confirmation_pages_make_two_refunds_but_never_more_than_was_paid(
    operator_client, order, seller
):
    seller_order = order.seller_orders.get(seller=seller)
    one = _confirm_data(operator_client.get(_url(order), {"seller_order": seller_order.pk}))
    other = _confirm_data(operator_client.get(_url(order), {"seller_order": seller_order.pk}))
    operator_client.post(_url(order), one)
    before = _state(order)

    response = operator_client.post(_url(order), other)

    assert response.status_code == 302
    assert _messages(response)[-1] == (
        "Everything has been refunded already. Nothing was refunded."
    )
    assert _state(order) == before


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_refund_without_a_reason_is_refused_and_changes_nothing(
    operator_client, order, seller, reason
):
    page = operator_client.get(
        _url(order), {"seller_order": order.seller_orders.get(seller=seller).pk}
    )
    before = _state(order)

    response = operator_client.post(_url(order), _confirm_data(page, reason=reason))

    assert response.status_code == 200
    assert "Give a reason" in response.content.decode()
    assert _state(order) == before


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ({"amount-{teapot}": "50.01"}, "At most $50.00 of “Teapot” can still be refunded."),
        ({"amount-{teapot}": "abc"}, "The amount for “Teapot”: Enter an amount such as 12.50."),
        ({"amount-{teapot}": "1.005"}, "USD amounts have at most 2 decimal places."),
        ({"qty-{teapot}": "3"}, "“Teapot” was bought 2 time(s) only."),
        ({"qty-{teapot}": "-1"}, "must be a whole number"),
        # Digits Python's isdigit() knows but int() does not read: no server error.
        ({"qty-{teapot}": "²"}, "must be a whole number"),
        ({"seller_order": "²"}, "must be a whole number"),
        ({"qty-{teapot}": "9" * 5000}, "must be a whole number"),
        ({"amount-{teapot}": "12,50"}, "commas only between thousands"),
        ({}, "Choose a quantity or an amount to refund on at least one line."),
    ],
)
def test_bad_choices_are_refused_with_a_clear_message_and_change_nothing(
    operator_client, order, choice, message
):
    teapot = _line(order, "Teapot")
    before = _state(order)

    response = operator_client.get(
        _url(order), {key.format(teapot=teapot.pk): value for key, value in choice.items()}
    )

    assert response.status_code == 302
    assert message in _messages(response)[-1]
    assert _messages(response)[-1].endswith("Nothing was refunded.")
    assert _state(order) == before


def test_a_confirmation_asking_more_than_is_left_now_is_refused(operator_client, order):
    teapot = _line(order, "Teapot")
    page = operator_client.get(_url(order), {f"amount-{teapot.pk}": "50.00"})
    refund_create(order=order, order_line=teapot, amount_minor=100)  # meanwhile
    before = _state(order)

    response = operator_client.post(_url(order), _confirm_data(page))

    assert response.status_code == 302
    assert _messages(response)[-1] == (
        "At most $49.00 of “Teapot” can still be refunded. Nothing was refunded."
    )
    assert _state(order) == before


def test_a_disputed_order_is_not_refunded_and_its_page_says_why(run, operator_client, order):
    attempt = order.payment_attempts.get(status="succeeded")
    run(
        dispute_opened,
        processor_name="local",
        processor_dispute_id="dp_1",
        payment_id=attempt.processor_payment_id,
        amount_minor=order.total_minor,
    )
    teapot = _line(order, "Teapot")
    before = _state(order)

    page = operator_client.get(reverse("admin:marketplace_order_change", args=[order.pk]))
    response = operator_client.get(_url(order), {f"qty-{teapot.pk}": "1"})

    assert "No refund can be made here: This payment is disputed (dispute dp_1 is open)" in (
        _text(page)
    )
    assert f'name="qty-{teapot.pk}"' not in page.content.decode()
    assert response.status_code == 302
    assert "This payment is disputed" in _messages(response)[-1]
    assert _state(order) == before


def test_the_service_refuses_a_disputed_order_under_its_lock(run, order, operator):
    attempt = order.payment_attempts.get(status="succeeded")
    run(
        dispute_opened,
        processor_name="local",
        processor_dispute_id="dp_2",
        payment_id=attempt.processor_payment_id,
        amount_minor=500,
    )
    before = _state(order)

    with pytest.raises(Exception, match="This payment is disputed"):
        order_refund_by_operator(
            order=order,
            line_amounts={_line(order, "Teapot").pk: 100},
            by=operator,
            reason="x",
            confirmation="k1",
        )
    assert _state(order) == before


def test_a_cancelled_order_is_not_refunded(operator, customer, seller):
    product = ProductFactory(seller=seller, price_minor=1000, stock=1)
    unpaid = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    Order.objects.filter(pk=unpaid.pk).update(status=Order.Status.CANCELLED)
    unpaid.refresh_from_db()

    with pytest.raises(Exception, match=f"Order #{unpaid.pk} was cancelled"):
        order_refund_by_operator(
            order=unpaid,
            line_amounts={unpaid.lines.get().pk: 1000},
            by=operator,
            reason="x",
            confirmation="k2",
        )
    assert not Refund.objects.exists()


def test_the_page_says_when_the_seller_was_paid_out_and_it_is_taken_back(
    run, operator_client, order, seller
):
    enable_payouts(seller)
    seller_order = order.seller_orders.get(seller=seller)
    seller_order_hold_release(seller_order=seller_order)
    run(run_payouts)
    payout = seller.payouts.get()
    assert payout.status == "paid"

    page = operator_client.get(_url(order), {"seller_order": seller_order.pk})

    html = _text(page)
    assert "<td><strong>Yes</strong></td> <td>Acme was already paid out for this sale" in html
    assert "(a clawback)" in html
    assert reverse("admin:payments_payout_change", args=[payout.pk]) in html


@pytest.fixture
def viewer_client(client, django_user_model):
    """Staff who may look at orders and refund requests, not operate them."""
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_order", "view_refundrequest"])
    )
    client.force_login(viewer)
    return client


def test_a_viewer_sees_the_order_without_refund_controls_and_may_not_refund(
    viewer_client, order, seller
):
    seller_order = order.seller_orders.get(seller=seller)
    before = _state(order)

    page = viewer_client.get(reverse("admin:marketplace_order_change", args=[order.pk]))
    preview = viewer_client.get(_url(order), {"seller_order": seller_order.pk})
    post = viewer_client.post(
        _url(order),
        {f"refund-{_line(order, 'Teapot').pk}": "50.00", "reason": "x", "confirmation": "k"},
    )

    assert page.status_code == 200
    assert "Refund these lines" not in page.content.decode()
    assert "refunding it needs the permission to operate orders" in _text(page)
    assert (preview.status_code, post.status_code) == (403, 403)
    assert _state(order) == before


# Refund requests: approve and decline go through the same kind of page.


@pytest.fixture
def refund_request(order, customer):
    return refund_request_create(
        customer=customer, order_line=_line(order, "Cup"), reason="Chipped rim"
    )


def _decide_url(refund_request, decision):
    return reverse("admin:payments_refundrequest_decide", args=[refund_request.pk, decision])


def test_approving_a_request_shows_its_effect_then_refunds_it_once(
    run, operator_client, operator, refund_request
):
    page = operator_client.get(_decide_url(refund_request, "approve"))

    html = _text(page)
    assert page.status_code == 200
    assert "The customer says</th><td>Chipped rim" in html
    assert "1 × Cup</td> <td>$10.99</td> <td>$9.59</td> <td>$1.40</td> <td>$0.00</td>" in html
    assert "Approve and refund $10.99" in html
    assert not Refund.objects.exists()

    data = {"reason": "Photo shows the chip", "confirmation": "k"}
    first = run(operator_client.post, _decide_url(refund_request, "approve"), data)
    second = run(operator_client.post, _decide_url(refund_request, "approve"), data)

    refund = Refund.objects.get()
    assert (refund.amount_minor, refund.status) == (1099, "succeeded")
    assert _messages(first)[-1].startswith(f"{refund_request} approved: refund #{refund.pk}")
    assert _messages(second)[-1] == f"{refund_request} was approved already. Nothing was changed."
    refund_request.refresh_from_db()
    assert (refund_request.status, refund_request.decided_by, refund_request.decision_note) == (
        "approved",
        operator,
        "Photo shows the chip",
    )
    [record] = audit_history(refund_request)
    assert (record.action, record.via, record.reason) == (
        "approve",
        "admin",
        "Photo shows the chip",
    )


def test_declining_a_request_needs_a_reason_and_refunds_nothing(
    operator_client, operator, refund_request
):
    refused = operator_client.post(_decide_url(refund_request, "decline"), {"reason": " "})
    refund_request.refresh_from_db()
    assert refused.status_code == 200 and refund_request.status == "requested"

    done = operator_client.post(_decide_url(refund_request, "decline"), {"reason": "Used"})

    assert done.status_code == 302
    refund_request.refresh_from_db()
    assert (refund_request.status, refund_request.decision_note) == ("declined", "Used")
    assert not Refund.objects.exists()


def test_the_list_actions_lead_to_the_confirmation_page(operator_client, refund_request):
    response = operator_client.post(
        reverse("admin:payments_refundrequest_changelist"),
        {"action": "approve", "_selected_action": [refund_request.pk]},
    )

    assert response.status_code == 302
    assert response["Location"] == _decide_url(refund_request, "approve")
    refund_request.refresh_from_db()
    assert refund_request.status == RefundRequest.Status.REQUESTED


def test_a_viewer_may_not_decide_refund_requests(viewer_client, refund_request):
    listing = viewer_client.get(reverse("admin:payments_refundrequest_changelist"))

    assert listing.status_code == 200
    assert "Approve…" not in listing.content.decode()
    for decision in ("approve", "decline"):
        assert viewer_client.get(_decide_url(refund_request, decision)).status_code == 403
        response = viewer_client.post(_decide_url(refund_request, decision), {"reason": "x"})
        assert response.status_code == 403
    refund_request.refresh_from_db()
    assert refund_request.status == RefundRequest.Status.REQUESTED


@pytest.mark.parametrize(
    "tamper",
    ["an amount edited", "the signature edited", "no signature", "another page's key"],
)
def test_a_confirmation_refunds_only_what_its_page_previewed(
    run, operator_client, order, seller, tamper
):
    seller_order = order.seller_orders.get(seller=seller)
    page = operator_client.get(_url(order), {"seller_order": seller_order.pk})
    data = _confirm_data(page)
    before = _state(order)
    if tamper == "an amount edited":
        name = next(key for key in data if key.startswith("refund-"))
        data[name] = "1.00"  # less than previewed, still a valid amount
    elif tamper == "the signature edited":
        data["previewed"] = data["previewed"][:-2] + "xx"
    elif tamper == "no signature":
        del data["previewed"]
    else:
        data["confirmation"] = "another-key"

    response = run(operator_client.post, _url(order), data)

    assert response.status_code == 302
    assert (
        "open it again" in _messages(response)[-1]
        or "open the confirmation" in (_messages(response)[-1])
    )
    assert _state(order) == before


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:payments_commissionrule_changelist",
        "admin:payments_commissionrule_add",
        "admin:payments_ledgertransaction_changelist",
        "admin:payments_ledgeraccount_changelist",
        "admin:payments_ledgerentry_changelist",
        "admin:payments_refund_changelist",
        "admin:marketplace_order_changelist",
        "admin:payments_payout_changelist",
        "admin:payments_payoutpolicy_changelist",
        "admin:payments_webhookevent_changelist",
        "admin:payments_refundrequest_changelist",
        "admin:payments_dispute_changelist",
    ],
)
def test_operators_see_the_money_pages(operator_client, books, url_name):
    assert operator_client.get(reverse(url_name)).status_code == 200


def test_an_order_page_shows_its_seller_orders_and_lines(operator_client, books):
    response = operator_client.get(reverse("admin:marketplace_order_change", args=[books.pk]))

    assert response.status_code == 200
    [part] = response.context["seller_parts"]
    [line] = part.lines
    assert (line.gross_minor, line.commission_minor, line.seller_share_minor) == (2000, 200, 1800)
    html = re.sub(r"\s+", " ", response.content.decode())
    assert "Acme · seller order" in html  # the seller order's seller
    assert "<td>$20.00</td>" in html and "<td>$2.00</td> <td>$18.00</td>" in html
    assert not re.search(r">\s*1800\s*<", html)


def test_ledger_rows_are_read_only_in_the_admin(operator_client, books):
    txn = LedgerTransaction.objects.first()

    page = operator_client.get(reverse("admin:payments_ledgertransaction_change", args=[txn.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert operator_client.get(reverse("admin:payments_ledgertransaction_add")).status_code == 403
    response = operator_client.post(
        reverse("admin:payments_ledgertransaction_delete", args=[txn.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert LedgerTransaction.objects.filter(pk=txn.pk).exists()


def test_an_operator_adds_a_commission_rule_and_bad_rules_are_refused(operator_client, seller):
    url = reverse("admin:payments_commissionrule_add")
    base = {
        "name": "Acme special",
        "scope": "seller",
        "seller": seller.pk,
        "percentage": "5",
        "fixed_fee": "",
        "currency": "",
        "active_from": "2026-01-01T00:00:00",
        "change_reason": "Acme's volume deal",
    }

    bad = operator_client.post(url, base | {"fixed_fee": "0.30"})
    assert bad.status_code == 200
    assert "a fixed fee, minimum or maximum needs one." in bad.content.decode()
    assert not CommissionRule.objects.exists()

    good = operator_client.post(url, base)
    assert good.status_code == 302
    rule = CommissionRule.objects.get()
    assert (rule.seller, rule.percentage_bps, rule.fixed_fee_minor) == (seller, 500, 0)


def test_customers_get_nothing_of_the_money_admin(customer_client, books):
    response = customer_client.get(reverse("admin:payments_ledgertransaction_changelist"))

    assert response.status_code == 302


def test_an_operator_holds_a_payout_from_the_admin_with_a_reason(operator_client, operator, seller):
    from payments.models import AuditRecord, Payout

    payout = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=500, period="p", status="scheduled"
    )

    operator_client.post(
        reverse("admin:payments_payout_changelist"),
        {"action": "hold", "_selected_action": [payout.pk], "reason": "Address check"},
    )

    payout.refresh_from_db()
    assert payout.status == "held"
    assert list(AuditRecord.objects.values_list("action", "reason", "actor", "via")) == [
        ("hold", "Address check", operator.pk, "admin")
    ]


def test_the_confirmation_page_shows_and_refunds_the_fee_part(
    run, operator_client, customer, seller, other_seller
):
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)  # 5 % of $80.00 = $4.00
    teapot = ProductFactory(seller=seller, title="Teapot", price_minor=6000)
    print_ = ProductFactory(seller=other_seller, title="Print", price_minor=2000)
    order = pay_by_card(
        run,
        place_order(customer=customer, cart_items=[CartItem(teapot.pk, 1), CartItem(print_.pk, 1)]),
    )
    url = reverse("admin:marketplace_order_refund", args=[order.pk])
    seller_order = order.seller_orders.get(seller=seller)
    page = operator_client.get(url, {"seller_order": seller_order.pk})
    assert page.status_code == 200
    html = re.sub(r"\s+", " ", page.content.decode())
    assert "The customer gets back</th><td>$63.00" in html  # $60.00 + $3.00 of the fee
    assert "Service fee returned by the platform (pro rata)</th><td>$3.00" in html
    data = dict(page.context["hidden_amounts"])
    data.update(reason="Broken", confirmation=page.context["form"]["confirmation"].value())
    run(operator_client.post, url, data)
    refund = Refund.objects.get()
    assert (refund.amount_minor, refund.service_fee_minor) == (6300, 300)

    refund_mark_succeeded(refund=refund)
    page = operator_client.get(reverse("admin:marketplace_order_change", args=[order.pk]))
    html = re.sub(r"\s+", " ", page.content.decode())
    assert "$4.00 ($3.00 refunded)" in html  # the fee, and what went back of it
