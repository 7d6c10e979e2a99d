"""``metadata`` on orders, refunds and payouts: Stripe's limits, merge and delete,
who may change it, and that it never moves money."""

import pytest
from django.urls import reverse

from marketplace.models import Order
from payments.collection.refunds import refund_create
from payments.models import AuditRecord, LedgerEntry, Payout, Refund
from tests.api.shapes import SHIPPING
from tests.factories import ProductFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


OUT_OF_LIMITS = [
    ({f"k{i}": "v" for i in range(51)}, "metadata"),
    ({"k" * 41: "v"}, "metadata[" + "k" * 41 + "]"),
    ({"note": "v" * 501}, "metadata[note]"),
    ({"count": 3}, "metadata[count]"),
    ({"flag": True}, "metadata[flag]"),
    ({"a[b]": "v"}, "metadata[a[b]]"),
    ({"": "v"}, "metadata"),
    (["not", "an", "object"], "metadata"),
    ("text", "metadata"),
]


def patch(client, url, metadata):
    return client.patch(url, {"metadata": metadata}, format="json")


def place(client, mug, **extra):
    return client.post(
        reverse("api:order-list"),
        {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING, **extra},
        format="json",
    )


def test_an_order_is_placed_with_metadata_through_the_api_and_the_cart(api_as, customer, seller):
    mug = ProductFactory(seller=seller, price_minor=1000, stock=5)
    client = api_as(customer)

    placed = client.post(
        reverse("api:order-list"),
        {
            "items": [{"product": mug.pk, "quantity": 1}],
            "shipping": SHIPPING,
            "metadata": {"shop_order": "A-17"},
        },
        format="json",
    )
    client.post(reverse("api:cart-items"), {"product": mug.pk, "quantity": 2}, format="json")
    checked_out = client.post(
        reverse("api:cart-checkout"),
        {"currency": "USD", "shipping": SHIPPING, "metadata": {"shop_order": "A-18"}},
        format="json",
    )
    plain = client.post(
        reverse("api:order-list"),
        {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING},
        format="json",
    )

    assert placed.status_code == 201 and placed.json()["metadata"] == {"shop_order": "A-17"}
    assert checked_out.status_code == 201, checked_out.content
    assert checked_out.json()["metadata"] == {"shop_order": "A-18"}
    assert plain.json()["metadata"] == {}
    assert Order.objects.get(pk=placed.json()["id"]).metadata == {"shop_order": "A-17"}
    listed = client.get(reverse("api:order-list")).json()["data"]
    assert {o["id"]: o["metadata"] for o in listed}[checked_out.json()["id"]] == {
        "shop_order": "A-18"
    }


@pytest.mark.parametrize(("metadata", "param"), OUT_OF_LIMITS)
def test_an_order_with_metadata_out_of_limits_is_not_placed(
    api_as, customer, seller, metadata, param
):
    mug = ProductFactory(seller=seller, price_minor=1000, stock=5)
    answer = api_as(customer).post(
        reverse("api:order-list"),
        {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING, "metadata": metadata},
        format="json",
    )

    assert answer.status_code == 400
    assert answer.json()["param"] == param
    assert not Order.objects.exists()
    mug.refresh_from_db()
    assert mug.stock == 5


def test_a_patch_merges_and_an_empty_value_deletes(api_as, customer, seller):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    client = api_as(customer)
    url = reverse("api:order-detail", args=[order.pk])

    first = patch(client, url, {"a": "1", "b": "2"})
    second = patch(client, url, {"b": "", "c": "3", "gone": ""})
    third = patch(client, url, {"a": None})

    assert first.status_code == 200 and first.json()["metadata"] == {"a": "1", "b": "2"}
    assert second.json()["metadata"] == {"a": "1", "c": "3"}
    assert third.json()["metadata"] == {"c": "3"}
    order.refresh_from_db()
    assert order.metadata == {"c": "3"}
    assert client.get(url).json()["metadata"] == {"c": "3"}


def test_fifty_keys_fit_and_the_fifty_first_does_not(api_as, customer, seller):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    client = api_as(customer)
    url = reverse("api:order-detail", args=[order.pk])
    fifty = {f"k{i}": "v" * 500 for i in range(50)}

    full = patch(client, url, {**fifty, "k" * 40: ""})
    one_more = patch(client, url, {"k50": "v"})
    replace = patch(client, url, {"k0": "", "k50": "v"})

    assert full.status_code == 200 and len(full.json()["metadata"]) == 50
    assert one_more.status_code == 400 and one_more.json()["param"] == "metadata"
    assert replace.status_code == 200 and "k50" in replace.json()["metadata"]


@pytest.mark.parametrize(("metadata", "param"), OUT_OF_LIMITS)
def test_metadata_out_of_limits_is_refused_and_nothing_changes(
    api_as, customer, operator, seller, metadata, param
):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    Order.objects.filter(pk=order.pk).update(metadata={"keep": "me"})
    payout = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=900, period="p", metadata={"keep": "me"}
    )
    refund = refund_create(order=order)
    Refund.objects.filter(pk=refund.pk).update(metadata={"keep": "me"})
    targets = [
        (api_as(customer), reverse("api:order-detail", args=[order.pk]), order),
        (api_as(operator), reverse("api:payout-detail", args=[payout.pk]), payout),
        (api_as(operator), reverse("api:refund-detail", args=[refund.pk]), refund),
    ]

    for client, url, row in targets:
        answer = patch(client, url, metadata)
        assert answer.status_code == 400, url
        assert answer["Content-Type"].startswith("application/problem+json")
        assert answer.json()["param"] == param
        row.refresh_from_db()
        assert row.metadata == {"keep": "me"}


def test_a_patch_changes_metadata_only(api_as, customer, seller):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    client = api_as(customer)
    url = reverse("api:order-detail", args=[order.pk])

    answer = client.patch(url, {"metadata": {"a": "1"}, "status": "refunded"}, format="json")
    missing = client.patch(url, {}, format="json")

    assert answer.status_code == 400 and answer.json()["param"] == "status"
    assert missing.status_code == 400 and missing.json()["param"] == "metadata"
    order.refresh_from_db()
    assert order.metadata == {} and order.status == "paid"


def test_only_the_orders_customer_changes_its_metadata(api_as, customer, other_customer, seller):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    url = reverse("api:order-detail", args=[order.pk])

    answers = [
        patch(api_as(other_customer), url, {"a": "1"}).status_code,
        patch(api_as(seller.user), url, {"a": "1"}).status_code,
        patch(api_as(None), url, {"a": "1"}).status_code,
    ]

    assert answers == [404, 404, 401]
    order.refresh_from_db()
    assert order.metadata == {}


def test_operators_set_payout_metadata_without_moving_money(api_as, operator, seller):
    payout = Payout.objects.create(seller=seller, currency="USD", amount_minor=900, period="p")
    entries = LedgerEntry.objects.count()
    url = reverse("api:payout-detail", args=[payout.pk])

    by_seller = patch(api_as(seller.user), url, {"a": "1"})
    by_operator = patch(api_as(operator), url, {"ticket": "T-9"})
    seller_reads = api_as(seller.user).get(url).json()

    assert by_seller.status_code == 403
    assert by_operator.status_code == 200
    assert by_operator.json()["metadata"] == {"ticket": "T-9"}
    assert seller_reads["metadata"] == {"ticket": "T-9"}
    payout.refresh_from_db()
    assert (payout.status, payout.amount_minor) == ("scheduled", 900)
    assert LedgerEntry.objects.count() == entries
    record = AuditRecord.objects.get(action="metadata", object_id=payout.pk)
    assert record.actor == operator and record.via == "api"


def test_refunds_are_for_operators_who_set_their_metadata(api_as, operator, seller, customer):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    refund = refund_create(order=order)
    url = reverse("api:refund-detail", args=[refund.pk])

    seller_list = api_as(seller.user).get(reverse("api:refund-list"))
    customer_patch = patch(api_as(customer), url, {"a": "1"})
    changed = patch(api_as(operator), url, {"ticket": "T-1"})
    listed = api_as(operator).get(reverse("api:refund-list")).json()["data"]

    assert seller_list.status_code == 403 and customer_patch.status_code == 403
    assert changed.status_code == 200 and changed.json()["metadata"] == {"ticket": "T-1"}
    assert listed[0]["metadata"] == {"ticket": "T-1"}
    refund.refresh_from_db()
    assert (refund.amount_minor, refund.status) == (1000, "pending")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_updates_at_once_both_apply(customer, seller, operator):
    from marketplace.services.orders import order_metadata_update
    from payments.integrations.metadata import payout_metadata_update
    from tests.concurrency import race

    order = paid_order([(seller, 1000, 1)], customer=customer)
    payout = Payout.objects.create(seller=seller, currency="USD", amount_minor=900, period="p")

    # The first holds the row's lock; the second waits, then merges into what it wrote.
    race(
        lambda: order_metadata_update(order=order, metadata={"a": "1"}),
        lambda: order_metadata_update(order=order, metadata={"b": "2"}),
    )
    race(
        lambda: payout_metadata_update(payout=payout, by=operator, metadata={"a": "1"}),
        lambda: payout_metadata_update(payout=payout, by=operator, metadata={"b": "2"}),
    )

    order.refresh_from_db()
    payout.refresh_from_db()
    assert order.metadata == {"a": "1", "b": "2"}
    assert payout.metadata == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    "metadata",
    [{"note": "a\u0000b"}, {"a\u0000b": "note"}],
    ids=["nul-in-value", "nul-in-key"],
)
def test_a_nul_character_in_metadata_is_a_400_not_a_500(api_as, customer, mug, metadata):
    """PostgreSQL's jsonb cannot hold U+0000: it must be refused like any other bad value."""
    client = api_as(customer)
    placed = place(client, mug, metadata=metadata)
    assert placed.status_code == 400, placed.content
    assert placed["Content-Type"] == "application/problem+json"
    assert placed.json()["param"].startswith("metadata")

    order = place(client, mug)
    assert order.status_code == 201
    patched = client.patch(
        reverse("api:order-detail", args=[order.json()["id"]]),
        {"metadata": metadata},
        format="json",
    )
    assert patched.status_code == 400, patched.content
    assert Order.objects.get(pk=order.json()["id"]).metadata == {}
