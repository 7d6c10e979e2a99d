"""The cart's quantity messages, the cart's phone layout and the payment page's test cards."""

import pytest
from django.conf import settings
from django.urls import reverse

from marketplace.services.orders import CartItem, place_order
from payments.processors.local import TEST_CARD_OUTCOMES, TEST_CARDS
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

LIMIT = settings.ORDER_MAX_QUANTITY


@pytest.fixture
def teapot(seller):
    return ProductFactory(seller=seller, title="Teapot", price_minor=2500, stock=5000)


def messages_on_cart_page(client):
    return [str(m) for m in client.get(reverse("marketplace:cart")).context["messages"]]


def in_cart(client):
    return client.get(reverse("marketplace:cart")).context["cart_count"]()


@pytest.mark.parametrize(
    ("url", "quantity", "message"),
    [
        ("marketplace:cart_add", 5000, f"Choose a quantity from 1 to {LIMIT}."),
        ("marketplace:cart_add", LIMIT + 1, f"Choose a quantity from 1 to {LIMIT}."),
        ("marketplace:cart_add", 0, f"Choose a quantity from 1 to {LIMIT}."),
        ("marketplace:cart_add", "two", f"Choose a quantity from 1 to {LIMIT}."),
        ("marketplace:cart_update", 5000, f"Choose a quantity from 0 to {LIMIT}."),
        ("marketplace:cart_update", -1, f"Choose a quantity from 0 to {LIMIT}."),
        ("marketplace:cart_update", "", f"Choose a quantity from 0 to {LIMIT}."),
    ],
)
def test_a_quantity_out_of_range_names_both_limits_and_changes_nothing(
    client, teapot, url, quantity, message
):
    response = client.post(reverse(url), {"product": teapot.pk, "quantity": quantity})

    assert response.status_code == 302
    assert messages_on_cart_page(client) == [message]
    assert in_cart(client) == 0


def test_the_limits_themselves_are_accepted(client, teapot):
    client.post(reverse("marketplace:cart_add"), {"product": teapot.pk, "quantity": 1})
    client.post(reverse("marketplace:cart_update"), {"product": teapot.pk, "quantity": LIMIT})
    assert in_cart(client) == LIMIT

    client.post(reverse("marketplace:cart_update"), {"product": teapot.pk, "quantity": 0})
    assert in_cart(client) == 0


def test_adding_past_the_limit_says_how_many_are_in_the_cart_already(client, teapot):
    client.post(reverse("marketplace:cart_add"), {"product": teapot.pk, "quantity": LIMIT - 1})

    client.post(reverse("marketplace:cart_add"), {"product": teapot.pk, "quantity": 5})

    assert messages_on_cart_page(client)[-1] == (
        f"At most {LIMIT} of one product fit in the cart; it has {LIMIT - 1} of “Teapot” already."
    )
    assert in_cart(client) == LIMIT - 1


def test_every_cart_cell_is_labelled_for_the_phone_layout(client, teapot):
    client.post(reverse("marketplace:cart_add"), {"product": teapot.pk, "quantity": 2})

    html = client.get(reverse("marketplace:cart")).content.decode()

    assert 'class="cart-table"' in html
    for label in ("Price", "Quantity", "Subtotal"):
        assert f'data-label="{label}"' in html
    css = (settings.BASE_DIR / "static" / "css" / "app.css").read_text()
    phone = css[css.index("/* Cart on a phone") :]
    assert "@media (max-width: 36rem)" in phone and "attr(data-label)" in phone


def test_the_payment_page_lists_every_test_card_of_the_local_processor(client, customer, teapot):
    order = place_order(customer=customer, cart_items=[CartItem(teapot.pk, 1)])
    client.force_login(customer)

    response = client.get(reverse("marketplace:order_pay", args=[order.pk]))

    html = response.content.decode()
    assert len(TEST_CARDS) == 4
    for number in TEST_CARDS:
        grouped = "\N{NO-BREAK SPACE}".join(number[i : i + 4] for i in range(0, 16, 4))
        assert f"<code>{grouped}</code>" in html
        assert TEST_CARD_OUTCOMES[number].capitalize() in html
    assert [card.outcome for card in response.context["test_cards"]] == list(
        TEST_CARD_OUTCOMES.values()
    )
