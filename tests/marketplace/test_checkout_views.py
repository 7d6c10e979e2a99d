"""Cart, checkout and payment pages, driven with the test client on the local processor."""

import re

import pytest
from django.urls import reverse

from marketplace.models import CartItem, Order
from marketplace.services.orders import CartItem as OrderItem
from marketplace.services.orders import place_order
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from tests.factories import (
    PASSWORD,
    CommissionRuleFactory,
    ProductFactory,
    SellerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SHIPPING = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
CARD = {"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"}


@pytest.fixture
def shop(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    return (
        ProductFactory(seller=seller, title="Teapot", price_minor=2500, stock=3),
        ProductFactory(seller=other_seller, title="Print", price_minor=1000, stock=3),
    )


def form_token(client, currency):
    """The one-time token of the checkout form, as the page gives it to a browser."""
    form = client.get(reverse("marketplace:checkout", args=[currency])).context["form"]
    return {"submission_token": form["submission_token"].value()}


def add(client, product, quantity=1):
    return client.post(
        reverse("marketplace:cart_add"), {"product": product.pk, "quantity": quantity}
    )


def test_a_visitor_cart_follows_them_into_their_account(client, shop, customer):
    teapot, print_ = shop
    add(client, teapot, 2)
    add(client, print_)
    assert client.get(reverse("marketplace:cart")).context["cart_count"]() == 3

    client.post(reverse("accounts:login"), {"username": customer.email, "password": PASSWORD})

    assert dict(
        CartItem.objects.filter(user=customer).values_list("product__title", "quantity")
    ) == {
        "Teapot": 2,
        "Print": 1,
    }


def test_the_cart_groups_by_seller_with_subtotals(client, shop):
    teapot, print_ = shop
    add(client, teapot, 2)
    add(client, print_)

    groups = client.get(reverse("marketplace:cart")).context["groups"]

    assert len(groups) == 1 and groups[0].total_minor == 6000
    subtotals = {g.seller.display_name: g.subtotal_minor for g in groups[0].sellers}
    assert subtotals == {"Acme": 5000, "Rival": 1000}


def test_more_than_in_stock_cannot_go_in_the_cart(client, shop):
    teapot, _ = shop

    response = add(client, teapot, 4)

    assert response.status_code == 302
    messages = [str(m) for m in client.get(reverse("marketplace:cart")).context["messages"]]
    assert "Only 3 of “Teapot” left." in messages
    assert client.get(reverse("marketplace:cart")).context["cart_count"]() == 0


def test_checkout_pay_and_see_the_order_paid(client, shop, customer, seller, other_seller, run):
    teapot, print_ = shop
    client.force_login(customer)
    add(client, teapot)
    add(client, print_, 2)

    response = client.post(
        reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD")
    )
    order = Order.objects.get()
    assert response.url == reverse("marketplace:order_pay", args=[order.pk])
    assert order.shipping_city == "London" and order.total_minor == 4500
    assert not CartItem.objects.filter(user=customer).exists()

    assert client.get(response.url).status_code == 200
    paid = run(client.post, reverse("marketplace:order_pay", args=[order.pk]), CARD)

    assert paid.url == reverse("marketplace:order_detail", args=[order.pk])
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert seller_balance(seller=seller, currency="USD").pending == 2250
    assert seller_balance(seller=other_seller, currency="USD").pending == 1800
    assert "Your payment was received on" in client.get(paid.url).content.decode()
    assert ledger_check().ok


def test_a_declined_card_shows_why_and_another_card_pays_the_same_order(
    client, shop, customer, run
):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()
    pay = reverse("marketplace:order_pay", args=[order.pk])

    declined = run(client.post, pay, CARD | {"card_number": "4000 0000 0000 0002"})
    assert declined.status_code == 200
    assert "Your card was declined." in declined.content.decode()

    run(client.post, pay, CARD)

    assert Order.objects.count() == 1
    assert Order.objects.get().status == Order.Status.PAID
    assert order.payment_attempts.count() == 2


def test_the_confirmation_step_card(client, shop, customer, run):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()

    step = run(
        client.post,
        reverse("marketplace:order_pay", args=[order.pk]),
        CARD | {"card_number": "4000 0025 0000 3155"},
    )
    assert step.url == reverse("marketplace:order_pay_confirm", args=[order.pk])
    run(client.post, step.url, {"approve": "yes"})

    assert Order.objects.get().status == Order.Status.PAID


@pytest.mark.parametrize(
    ("card", "field", "message"),
    [
        ({"card_number": "1234"}, "card_number", "Enter a valid card number."),
        ({"expiry": "01/20"}, "expiry", "This card has expired."),
        ({"expiry": "13/30"}, "expiry", "Enter the expiry as MM/YY."),
        ({"cvc": "12"}, "cvc", "Enter the 3 or 4 digits on the back of the card."),
    ],
)
def test_a_bad_card_form_changes_nothing(client, shop, customer, card, field, message):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()

    response = client.post(reverse("marketplace:order_pay", args=[order.pk]), CARD | card)

    assert message in response.context["form"].errors[field]
    assert Order.objects.get().status == Order.Status.AWAITING_PAYMENT


def test_checkout_needs_a_login(client, shop):
    response = client.get(reverse("marketplace:checkout", args=["USD"]))

    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_a_bad_address_is_a_form_error_and_places_no_order(client, shop, customer):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)

    response = client.post(
        reverse("marketplace:checkout", args=["USD"]),
        SHIPPING | form_token(client, "USD") | {"country": ""},
    )

    assert "country" in response.context["form"].errors
    assert not Order.objects.exists()


def test_another_customer_order_is_not_found(client, shop, customer):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()

    client.force_login(UserFactory())
    for name in ("order_detail", "order_pay", "order_pay_confirm"):
        assert client.get(reverse(f"marketplace:{name}", args=[order.pk])).status_code == 404


def test_a_cart_in_two_currencies_checks_out_one_currency_at_a_time(client, shop, customer):
    teapot, _ = shop
    euro = ProductFactory(seller=SellerFactory(default_currency="EUR"), currency="EUR", stock=2)
    client.force_login(customer)
    add(client, teapot)
    add(client, euro)

    client.post(reverse("marketplace:checkout", args=["EUR"]), SHIPPING | form_token(client, "EUR"))

    assert Order.objects.get().currency == "EUR"
    assert list(CartItem.objects.filter(user=customer).values_list("product", flat=True)) == [
        teapot.pk
    ]


def test_a_seller_sets_up_payouts_on_the_local_onboarding_page(seller_client, seller, run):
    start = run(seller_client.post, reverse("marketplace:seller_payouts"))
    seller.refresh_from_db()
    assert start.url.startswith(f"/payments/local/onboarding/{seller.payout_account_id}/")

    assert seller_client.get(start.url).status_code == 200
    done = run(seller_client.post, start.url)
    assert done.url.endswith(reverse("marketplace:seller_payouts_return"))
    seller_client.get(reverse("marketplace:seller_payouts_return"))

    seller.refresh_from_db()
    assert seller.payout_status == "enabled"
    page = seller_client.get(reverse("marketplace:seller_payouts")).content.decode()
    assert "Your payout account is ready" in page


def test_the_live_status_brings_the_whole_page_once_the_order_is_paid(client, shop, customer, run):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()
    url = reverse("marketplace:order_detail", args=[order.pk])

    waiting = client.get(url, headers={"HX-Request": "true"})
    assert "HX-Retarget" not in waiting.headers
    run(client.post, reverse("marketplace:order_pay", args=[order.pk]), CARD)
    paid = client.get(url + "?poll=1", headers={"HX-Request": "true"})

    # The page's main part, swapped in place of the old one: no second request.
    assert (paid.headers["HX-Retarget"], paid.headers["HX-Reselect"]) == ("#main", "#main")
    assert paid.headers["HX-Reswap"] == "outerHTML"
    page = paid.content.decode()
    assert '<main id="main"' in page and "Thank you! Your payment was received" in page
    assert "hx-trigger" not in page


def test_the_live_status_waits_longer_each_time(client, shop, customer):
    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()
    pay = reverse("marketplace:order_pay", args=[order.pk])
    client.get(pay)
    order.payment_attempts.update(status="processing")  # paid; the event not processed yet
    url = reverse("marketplace:order_detail", args=[order.pk])

    delays = []
    for poll in (0, 1, 2, 3, 4, 5, 6, 7, 8, 50, "x"):
        fragment = client.get(f"{url}?poll={poll}", headers={"HX-Request": "true"})
        found = re.search(
            r'\?poll=(\d+)" hx-trigger="load delay:(\d+)s"', fragment.content.decode()
        )
        delays.append((int(found.group(1)), int(found.group(2))))

    assert [d for _, d in delays] == [1, 1, 2, 2, 3, 5, 8, 10, 10, 10, 1]
    assert [n for n, _ in delays] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 51, 1]


def test_a_payment_recorded_while_the_page_reads_shows_paid_not_a_pay_button(
    client, shop, customer, run, monkeypatch
):
    """The worker records the payment between the view's read of the order and its
    read of the attempt (seen under load): the page reads the order again."""
    from marketplace.views import checkout as views

    teapot, _ = shop
    client.force_login(customer)
    add(client, teapot)
    client.post(reverse("marketplace:checkout", args=["USD"]), SHIPPING | form_token(client, "USD"))
    order = Order.objects.get()
    stale = Order.objects.get(pk=order.pk)  # read before the payment is recorded
    run(client.post, reverse("marketplace:order_pay", args=[order.pk]), CARD)
    reads = []
    real = views._my_order

    def first_read_is_stale(request, pk):
        reads.append(pk)
        return stale if len(reads) == 1 else real(request, pk)

    monkeypatch.setattr(views, "_my_order", first_read_is_stale)
    url = reverse("marketplace:order_detail", args=[order.pk])

    status = client.get(url, headers={"HX-Request": "true"})

    assert stale.status == Order.Status.AWAITING_PAYMENT and len(reads) == 2
    assert status.headers["HX-Retarget"] == "#main"  # the paid page, in place
    assert "Waiting for your payment" not in status.content.decode()


@pytest.mark.parametrize("page", ["cart", "order_list", "order_detail"])
def test_cart_and_order_pages_run_the_same_number_of_queries_for_2_or_8_items(
    client, customer, page, count_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    client.force_login(customer)

    def buy(count):
        products = [
            ProductFactory(seller=SellerFactory(), price_minor=100, stock=5) for _ in range(count)
        ]
        for product in products:
            add(client, product)
        order = place_order(customer=customer, cart_items=[OrderItem(p.pk, 1) for p in products])
        for product in products:
            add(client, product)  # keep them in the cart too
        return order

    def url(order):
        if page == "order_detail":
            return reverse("marketplace:order_detail", args=[order.pk])
        return reverse(f"marketplace:{page}")

    first = buy(2)
    small = count_queries(lambda: client.get(url(first)))
    second = buy(8)
    large = count_queries(lambda: client.get(url(second)))

    assert 0 < large <= small, (small, large)
