"""The seller's "Orders to fulfil" page: ship with tracking, deliver; the customer sees it."""

import pytest
from django.urls import reverse

from marketplace.models import SellerOrder
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def sold(seller, customer):
    CommissionRuleFactory(percentage_bps=1000)
    return paid_order([(seller, 2500, 1)], customer=customer)


def test_a_seller_ships_with_tracking_then_delivers_and_the_customer_sees_it(
    seller_client, sold, customer, client
):
    seller_order = sold.seller_orders.get()
    page = seller_client.get(reverse("marketplace:seller_orders"))
    assert f"Order #{sold.pk}" in page.text and "Mark shipped" in page.text

    seller_client.post(
        reverse("marketplace:seller_order_ship", args=[seller_order.pk]),
        {"tracking_number": "1Z999AA1"},
    )
    on_the_way = seller_client.get(reverse("marketplace:seller_orders"), {"show": "shipped"})
    seller_client.post(reverse("marketplace:seller_order_deliver", args=[seller_order.pk]))

    seller_order.refresh_from_db()
    assert (seller_order.status, seller_order.tracking_number) == ("delivered", "1Z999AA1")
    assert "1Z999AA1" in on_the_way.text and "Mark delivered" in on_the_way.text
    client.force_login(customer)
    order_page = client.get(reverse("marketplace:order_detail", args=[sold.pk])).text
    assert "Delivered" in order_page and "1Z999AA1" in order_page


def test_another_seller_cannot_ship_it(client, sold, other_seller):
    client.force_login(other_seller.user)
    seller_order = sold.seller_orders.get()

    response = client.post(reverse("marketplace:seller_order_ship", args=[seller_order.pk]))

    assert response.status_code == 404
    assert SellerOrder.objects.get(pk=seller_order.pk).shipped_at is None


def test_delivering_before_shipping_is_refused_with_a_message(seller_client, sold):
    seller_order = sold.seller_orders.get()
    response = seller_client.post(
        reverse("marketplace:seller_order_deliver", args=[seller_order.pk]), follow=True
    )
    assert "Mark the order shipped first." in response.text


def test_customers_cannot_open_the_page(client, customer):
    client.force_login(customer)
    response = client.get(reverse("marketplace:seller_orders"))
    assert response.status_code in (302, 403)


def test_the_page_runs_the_same_queries_whatever_the_number_of_orders(
    seller_client, seller, count_queries
):
    url = reverse("marketplace:seller_orders")

    def measure(orders):
        for _ in range(orders):
            paid_order([(seller, 1000, 1), (seller, 500, 2)])
        seller_client.get(url, {"show": "all"})
        return count_queries(lambda: seller_client.get(url, {"show": "all"}))

    assert measure(10) == measure(30)  # 10 rows, then a full page of 20 of 40


def test_the_order_page_shows_the_share_when_it_is_paid_and_its_movements(
    seller_client, seller, customer
):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 2500, 1), (seller, 1000, 2)], customer=customer)
    seller_order = order.seller_orders.get()

    page = seller_client.get(reverse("marketplace:seller_order_detail", args=[seller_order.pk]))

    text = page.text
    assert page.status_code == 200
    assert "$45.00" in text and "$4.50" in text and "$40.50" in text  # sold, commission, share
    assert "Waiting: available on " in text and "expected in the payout of" in text
    assert "Sale" in text and "Mark shipped" in text


def test_shipping_from_the_order_page_comes_back_to_it(seller_client, sold):
    seller_order = sold.seller_orders.get()
    detail = reverse("marketplace:seller_order_detail", args=[seller_order.pk])

    back = seller_client.post(
        reverse("marketplace:seller_order_ship", args=[seller_order.pk]), {"next": detail}
    )
    elsewhere = seller_client.post(
        reverse("marketplace:seller_order_deliver", args=[seller_order.pk]),
        {"next": "https://evil.example/"},
    )

    assert back.url == detail
    assert elsewhere.url == reverse("marketplace:seller_orders") + "?show=shipped"


def test_another_sellers_or_an_unpaid_order_is_not_found(client, seller, other_seller, sold):
    from marketplace.services.orders import CartItem, place_order
    from tests.factories import ProductFactory

    unpaid = place_order(
        customer=sold.customer, cart_items=[CartItem(ProductFactory(seller=seller).pk, 1)]
    ).seller_orders.get()
    client.force_login(other_seller.user)
    theirs = client.get(
        reverse("marketplace:seller_order_detail", args=[sold.seller_orders.get().pk])
    )
    client.force_login(seller.user)
    not_paid = client.get(reverse("marketplace:seller_order_detail", args=[unpaid.pk]))

    assert (theirs.status_code, not_paid.status_code) == (404, 404)


def test_the_order_page_runs_the_same_queries_for_10_or_200_lines(
    seller_client, seller, customer, count_queries
):
    def measure(lines):
        order = paid_order([(seller, 100, 1)] * lines, customer=customer)
        url = reverse("marketplace:seller_order_detail", args=[order.seller_orders.get().pk])
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    assert measure(10) == measure(200)
