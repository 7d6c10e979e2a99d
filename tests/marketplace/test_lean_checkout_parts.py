"""The parts of the lean checkout that test_checkout_cost.py counts: the session store,
the request's user read with what the header shows, one transaction a request, the
cached country select and the one-statement cart write."""

import pytest
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketplace.auth_backends import ShopUserBackend
from marketplace.forms_checkout import ShippingForm
from marketplace.models import CartItem
from marketplace.services.cart import CartStorage, cart_add
from marketplace.sessions import SessionStore
from tests.factories import ProductFactory, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db


class CacheDown:
    def get(self, *args, **kwargs):
        raise ConnectionError("Redis is down")

    set = delete = get


def test_a_session_is_read_from_the_database_when_the_cache_is_down():
    stored = DatabaseStore()
    stored["cart"] = {"7": 2}
    stored.save()
    store = SessionStore(stored.session_key)
    store._cache = CacheDown()

    assert store.load() == {"cart": {"7": 2}}


def test_logging_out_fails_loudly_when_the_cache_cannot_forget_the_session():
    stored = DatabaseStore()
    stored["signed_in"] = True
    stored.save()
    store = SessionStore(stored.session_key)
    store._cache = CacheDown()

    with pytest.raises(ConnectionError):
        store.delete()


def test_the_request_user_comes_with_their_seller_profile_and_cart_count_in_one_query():
    seller = SellerFactory()
    customer = UserFactory()
    for quantity in (2, 3):
        CartItem.objects.create(user=customer, product=ProductFactory(), quantity=quantity)

    with CaptureQueriesContext(connection) as queries:
        found_seller = ShopUserBackend().get_user(seller.user.pk)
        found_customer = ShopUserBackend().get_user(customer.pk)
        assert found_seller.seller == seller and found_seller.cart_units is None
        assert found_customer.cart_units == 5
        assert not hasattr(found_customer, "seller")  # known to have none: no query

    assert len(queries) == 2


def test_the_country_select_marks_the_chosen_country_and_escapes_names():
    html = str(ShippingForm({"country": "CI"})["country"])

    assert html.startswith('<select id="id_country" name="country" required>')
    assert html.count("<option") == 250 and html.count(" selected") == 1
    assert '<option value="CI" selected>Côte d&#x27;Ivoire</option>' in html
    assert '<option value="" selected>' in str(ShippingForm()["country"])


def test_adding_to_the_cart_writes_one_upsert_and_adds_up(customer):
    product = ProductFactory(stock=10)
    storage = CartStorage(user=customer)
    cart_add(storage=storage, product=product, quantity=2)

    with CaptureQueriesContext(connection) as queries:
        cart_add(storage=CartStorage(user=customer), product=product, quantity=3)

    writes = [q["sql"] for q in queries if not q["sql"].startswith("SELECT")]
    assert len(writes) == 1 and "ON CONFLICT" in writes[0]
    assert CartItem.objects.get(user=customer, product=product).quantity == 5


@pytest.mark.django_db(transaction=True)
def test_a_shop_page_runs_its_queries_in_one_transaction(client, settings, monkeypatch):
    settings.SHOP_REQUEST_IN_ONE_TRANSACTION = True
    product = ProductFactory()
    client.force_login(UserFactory())
    outside = []

    def record(execute, sql, params, many, context):
        if not connection.in_atomic_block and not sql.startswith("BEGIN"):
            outside.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert client.get(product.get_absolute_url()).status_code == 200
        assert client.get(reverse("marketplace:cart")).status_code == 200

    assert outside == []
