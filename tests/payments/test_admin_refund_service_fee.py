"""The operator's refund confirmation page shows the service fee's part that goes back
with the lines, and the refund made from it sends exactly that to the customer."""

import re

import pytest
from django.urls import reverse

from marketplace.services.orders import CartItem, place_order
from payments.collection.refunds import refund_mark_succeeded
from payments.models import Refund
from tests.factories import CommissionRuleFactory, ProductFactory, ServiceFeeFactory
from tests.money_helpers import pay_by_card

pytestmark = pytest.mark.django_db


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
