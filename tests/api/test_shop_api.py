"""The shop API: catalog, a seller's products, a customer's orders and refund requests."""

import pytest
from django.urls import reverse

from marketplace.models import Order, Product
from payments.models import RefundRequest
from tests.api.shapes import SHIPPING
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(seller, other_seller, category, customer, other_customer):
    CommissionRuleFactory(percentage_bps=1000)
    mug = ProductFactory(seller=seller, category=category, title="Mug", price_minor=1250, stock=5)
    vase = ProductFactory(seller=other_seller, category=category, title="Vase", price_minor=4000)
    hidden = ProductFactory(seller=seller, category=category, title="Old", is_active=False)
    order = paid_order([(seller, 2000, 1)], customer=customer)
    theirs = paid_order([(other_seller, 3000, 1)], customer=other_customer)
    return {"mug": mug, "vase": vase, "hidden": hidden, "order": order, "theirs": theirs}


def test_the_catalog_is_public_and_hides_inactive_products(api, shop):
    products = api.get(reverse("api:product-list")).json()["data"]
    categories = api.get(reverse("api:category-list")).json()["data"]

    titles = {p["title"] for p in products}
    assert {"Mug", "Vase"} <= titles and "Old" not in titles
    assert "books" in {c["slug"] for c in categories}
    mine = api.get(reverse("api:product-list"), {"seller": "acme", "q": "mug"}).json()
    assert [p["title"] for p in mine["data"]] == ["Mug"]


def test_a_seller_lists_and_changes_only_their_own_products(api_as, shop, seller):
    client = api_as(seller.user)
    created = client.post(
        reverse("api:product-list"),
        {
            "title": "Teapot",
            "category": "books",
            "price_minor": 3500,
            "currency": "USD",
            "stock": 3,
        },
        format="json",
    )
    rival = client.patch(
        reverse("api:product-detail", args=[shop["vase"].pk]), {"stock": 0}, format="json"
    )
    negative = client.patch(
        reverse("api:product-detail", args=[shop["mug"].pk]), {"price_minor": -1}, format="json"
    )

    assert created.status_code == 201 and created.json()["seller"] == "acme"
    assert Product.objects.get(title="Teapot").slug == "teapot"
    assert rival.status_code == 404
    assert negative.status_code == 400 and "price_minor" in negative.json()["errors"]
    shop["vase"].refresh_from_db()
    assert shop["vase"].stock != 0


def test_an_order_is_placed_with_its_splits_once_per_key(api_as, shop, customer):
    client = api_as(customer)
    body = {"items": [{"product": shop["mug"].pk, "quantity": 2}], "shipping": SHIPPING}

    first = client.post(reverse("api:order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY="o1")
    replay = client.post(reverse("api:order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY="o1")

    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    order = first.json()
    assert (order["status"], order["total_minor"], order["currency"]) == (
        "awaiting_payment",
        2500,
        "USD",
    )
    (line,) = order["lines"]
    assert (line["gross_minor"], line["commission_minor"], line["seller_share_minor"]) == (
        2500,
        250,
        2250,
    )
    assert line["rule"]["percentage_bps"] == 1000
    assert Order.objects.filter(customer=customer).count() == 2  # the paid one and this one
    shop["mug"].refresh_from_db()
    assert shop["mug"].stock == 3


@pytest.mark.parametrize(
    ("items", "status", "code"),
    [
        ([{"product": 999999, "quantity": 1}], 400, "invalid"),
        ([{"product": "one mug", "quantity": 1}], 400, "invalid"),
        ([{"product": "MUG", "quantity": 0}], 400, "invalid"),
        ([{"product": "MUG", "quantity": 6}], 409, "out_of_stock"),
        ([{"product": "MUG", "quantity": 1}, {"product": "HIDDEN", "quantity": 1}], 400, "invalid"),
        ([], 400, "invalid"),
    ],
)
def test_bad_orders_are_refused_and_change_nothing(api_as, shop, customer, items, status, code):
    ids = {"MUG": shop["mug"].pk, "HIDDEN": shop["hidden"].pk}
    items = [{**i, "product": ids.get(i["product"], i["product"])} for i in items]
    before = Order.objects.count()

    response = api_as(customer).post(
        reverse("api:order-list"), {"items": items, "shipping": SHIPPING}, format="json"
    )

    assert response.status_code == status, response.json()
    assert response.json()["code"] == code
    assert Order.objects.count() == before
    shop["mug"].refresh_from_db()
    assert shop["mug"].stock == 5


def test_customers_see_only_their_own_orders(api_as, shop, customer):
    client = api_as(customer)
    ids = {o["id"] for o in client.get(reverse("api:order-list")).json()["data"]}

    assert ids == {shop["order"].pk}
    other = client.get(reverse("api:order-detail", args=[shop["theirs"].pk]))
    assert other.status_code == 404


def test_an_unpaid_order_is_cancelled_and_a_paid_one_is_not(api_as, shop, customer):
    client = api_as(customer)
    placed = client.post(
        reverse("api:order-list"),
        {"items": [{"product": shop["mug"].pk, "quantity": 1}], "shipping": SHIPPING},
        format="json",
    ).json()

    cancelled = client.post(reverse("api:order-cancel", args=[placed["id"]]))
    paid = client.post(reverse("api:order-cancel", args=[shop["order"].pk]))

    assert cancelled.json()["status"] == "cancelled"
    assert paid.status_code == 409 and paid.json()["code"] == "invalid_state"


def test_a_refund_request_goes_from_customer_to_seller(api_as, shop, customer, seller, run):
    line = shop["order"].lines.get()
    url = reverse("api:order-refund-request", args=[shop["order"].pk, line.pk])

    asked = api_as(customer).post(url, {"reason": "Arrived broken"}, format="json")
    twice = api_as(customer).post(url, {"reason": "Again"}, format="json")
    request_id = asked.json()["id"]
    rival = api_as(shop["theirs"].customer).post(url, {"reason": "Not mine"}, format="json")
    listed = api_as(seller.user).get(reverse("api:refund-request-list")).json()["data"]
    approved = run(
        api_as(seller.user).post, reverse("api:refund-request-approve", args=[request_id])
    )

    assert asked.status_code == 201 and asked.json()["amount_minor"] == 2000
    assert twice.status_code == 409
    assert rival.status_code == 404
    assert [r["id"] for r in listed] == [request_id]
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert RefundRequest.objects.get().refund is not None


def test_a_seller_sees_their_part_of_orders(api_as, shop, seller):
    orders = api_as(seller.user).get(reverse("api:seller-order-list")).json()["data"]

    assert [o["order"] for o in orders] == [shop["order"].pk]
    assert orders[0]["seller_share_minor"] == 1800


def test_product_creation_needs_a_seller(api_as, shop, customer):
    body = {"title": "X", "category": "books", "price_minor": 1, "currency": "USD", "stock": 1}
    assert api_as(None).post(reverse("api:product-list"), body, format="json").status_code == 401
    assert (
        api_as(customer).post(reverse("api:product-list"), body, format="json").status_code == 403
    )


@pytest.mark.parametrize(
    "endpoint", ["api:product-list", "api:order-list", "api:seller-order-list"]
)
def test_shop_lists_run_a_constant_number_of_queries(
    api_as, shop, seller, customer, count_queries, endpoint
):
    for _ in range(5):
        ProductFactory(seller=seller, category=shop["mug"].category)
        paid_order([(seller, 1000, 1), (seller, 500, 2)], customer=customer)
    client = api_as(customer if endpoint == "api:order-list" else seller.user)
    url = reverse(endpoint)
    client.get(url)

    assert count_queries(lambda: client.get(url, {"limit": 1})) == count_queries(
        lambda: client.get(url, {"limit": 50})
    )


def test_a_seller_ships_then_delivers_and_delivery_can_release_earnings(
    api_as, shop, seller, other_seller
):
    from payments.models import PayoutPolicy
    from payments.payouts.holds import holds_release_due

    PayoutPolicy.objects.create(seller=seller, release_on_delivery=True)
    seller_order = shop["order"].seller_orders.get()
    client = api_as(seller.user)
    ship_url = reverse("api:seller-order-ship", args=[seller_order.pk])
    deliver_url = reverse("api:seller-order-deliver", args=[seller_order.pk])

    early = client.post(deliver_url)
    shipped = client.post(ship_url, {"tracking_number": "1Z999"}, format="json")
    again = client.post(ship_url, {"tracking_number": "other"}, format="json")
    rival = api_as(other_seller.user).post(deliver_url)
    delivered = client.post(deliver_url)

    assert early.status_code == 409
    assert shipped.json()["status"] == "shipped" and shipped.json()["tracking_number"] == "1Z999"
    assert again.json()["tracking_number"] == "1Z999"  # repeating changes nothing
    assert rival.status_code == 404
    assert delivered.json()["status"] == "delivered"
    assert holds_release_due() == 1


def test_an_unpaid_order_cannot_ship(api_as, shop, customer, seller):
    placed = (
        api_as(customer)
        .post(
            reverse("api:order-list"),
            {"items": [{"product": shop["mug"].pk, "quantity": 1}], "shipping": SHIPPING},
            format="json",
        )
        .json()
    )
    seller_order_id = Order.objects.get(pk=placed["id"]).seller_orders.get().pk

    response = api_as(seller.user).post(reverse("api:seller-order-ship", args=[seller_order_id]))

    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


def test_a_customer_fills_a_cart_and_checks_out_one_currency(api_as, shop, customer):
    from marketplace.models import CartItem as SavedCartItem

    client = api_as(customer)
    jpy = ProductFactory(currency="JPY", price_minor=1500, stock=2)
    for product, quantity in ((shop["mug"], 2), (shop["vase"], 1), (jpy, 1)):
        answer = client.post(
            reverse("api:cart-items"), {"product": product.pk, "quantity": quantity}, format="json"
        )
        assert answer.status_code == 200
    too_many = client.post(
        reverse("api:cart-items"), {"product": shop["mug"].pk, "quantity": 99}, format="json"
    )
    cart = client.get(reverse("api:cart")).json()

    assert too_many.status_code == 400 and "Only 5" in too_many.json()["detail"]
    assert [(g["currency"], g["total_minor"]) for g in cart] == [("JPY", 1500), ("USD", 6500)]

    placed = client.post(
        reverse("api:cart-checkout"), {"currency": "USD", "shipping": SHIPPING}, format="json"
    )
    empty = client.post(
        reverse("api:cart-checkout"), {"currency": "USD", "shipping": SHIPPING}, format="json"
    )

    assert placed.status_code == 201 and placed.json()["total_minor"] == 6500
    assert [g["currency"] for g in client.get(reverse("api:cart")).json()] == ["JPY"]
    assert empty.status_code == 400
    assert SavedCartItem.objects.filter(user=customer).count() == 1


def test_a_sold_out_cart_checks_out_nothing(api_as, shop, customer):
    client = api_as(customer)
    client.post(
        reverse("api:cart-items"), {"product": shop["mug"].pk, "quantity": 5}, format="json"
    )
    Product.objects.filter(pk=shop["mug"].pk).update(stock=1)

    response = client.post(
        reverse("api:cart-checkout"), {"currency": "USD", "shipping": SHIPPING}, format="json"
    )

    assert response.status_code == 409 and response.json()["code"] == "out_of_stock"
    assert client.get(reverse("api:cart")).json()[0]["lines"][0]["quantity"] == 5
    assert not Order.objects.filter(status="awaiting_payment").exists()


def test_the_cart_needs_a_login(api):
    assert api.get(reverse("api:cart")).status_code == 401
