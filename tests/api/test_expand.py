"""``expand[]``: order → seller orders, payout → entries, refund → lines; ids otherwise,
and the same number of queries whatever the page's length, expanded or not."""

import pytest
from django.urls import reverse

from payments.collection.refunds import refund_create
from payments.models import LedgerEntry, Payout, PayoutEntry
from payments.payouts.holds import seller_order_hold_release
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(customer, seller, other_seller):
    return paid_order([(seller, 1000, 1), (other_seller, 2000, 2)], customer=customer)


def payout_with_entries(seller, customer):
    order = paid_order([(seller, 1000, 1)], customer=customer)
    seller_order_hold_release(seller_order=order.seller_orders.get())
    payout = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=900, period=f"p{Payout.objects.count()}"
    )
    entries = LedgerEntry.objects.filter(
        account__seller=seller, account__kind="available", payout_item__isnull=True
    )
    for entry in entries:
        PayoutEntry.objects.create(payout=payout, entry=entry)
    return payout, sorted(e.pk for e in entries)


def test_an_orders_seller_orders_are_ids_unless_expanded(api_as, customer, order):
    client = api_as(customer)
    url = reverse("api:order-detail", args=[order.pk])
    ids = sorted(order.seller_orders.values_list("pk", flat=True))

    plain = client.get(url).json()
    expanded = client.get(url, {"expand[]": "seller_orders"}).json()
    listed = client.get(reverse("api:order-list"), {"expand[]": "data.seller_orders"}).json()

    assert plain["seller_orders"] == ids
    assert [len(line) > 0 for line in plain["lines"]] == [True, True]  # lines stay whole
    assert [so["id"] for so in expanded["seller_orders"]] == ids
    assert [so["seller_share_minor"] for so in expanded["seller_orders"]] == [
        so.seller_share_minor for so in order.seller_orders.order_by("pk")
    ]
    assert [len(so["lines"]) for so in expanded["seller_orders"]] == [1, 1]
    assert listed["data"][0]["seller_orders"] == expanded["seller_orders"]


def test_a_payouts_entries_are_ids_unless_expanded(api_as, seller, customer):
    payout, entry_ids = payout_with_entries(seller, customer)
    client = api_as(seller.user)

    plain = client.get(reverse("api:payout-list")).json()["data"][0]
    expanded = client.get(reverse("api:payout-list"), {"expand[]": "entries"}).json()["data"][0]
    detail = client.get(reverse("api:payout-detail", args=[payout.pk])).json()

    assert entry_ids and plain["entries"] == entry_ids
    assert [e["entry_id"] for e in expanded["entries"]] == entry_ids
    assert expanded["entries"] == detail["breakdown"]
    assert detail["entries"] == entry_ids


def test_a_refunds_lines_are_ids_unless_expanded(api_as, operator, order):
    refund = refund_create(order=order)
    client = api_as(operator)
    lines = list(refund.lines.order_by("pk"))

    plain = client.get(reverse("api:refund-detail", args=[refund.pk])).json()
    expanded = client.get(reverse("api:refund-list"), {"expand[]": "lines"}).json()["data"][0]

    assert plain["order"] == order.pk and plain["amount_minor"] == order.total_minor
    assert plain["lines"] == [line.pk for line in lines]
    assert [(x["order_line"], x["amount_minor"]) for x in expanded["lines"]] == [
        (line.order_line_id, line.amount_minor) for line in lines
    ]


@pytest.mark.parametrize(
    ("url_name", "query"),
    [
        ("api:order-list", {"expand[]": "lines"}),
        ("api:order-list", {"expand[]": ["seller_orders", "customer"]}),
        ("api:order-list", {"expand": "seller_orders"}),
        ("api:payout-list", {"expand[]": "seller_orders"}),
        ("api:refund-list", {"expand[]": "entries"}),
        ("api:ledger-entry-list", {"expand[]": "transaction"}),
    ],
)
def test_an_unknown_expansion_is_a_400_naming_expand(api_as, operator, customer, url_name, query):
    client = api_as(customer if url_name == "api:order-list" else operator)
    answer = client.get(reverse(url_name), query)

    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("application/problem+json")
    assert answer.json()["param"] == "expand"


def test_the_data_prefix_is_for_lists_only(api_as, customer, order):
    answer = api_as(customer).get(
        reverse("api:order-detail", args=[order.pk]), {"expand[]": "data.seller_orders"}
    )
    assert answer.status_code == 400 and answer.json()["param"] == "expand"


@pytest.mark.parametrize(
    ("url_name", "expansion"),
    [
        ("api:order-list", "seller_orders"),
        ("api:payout-list", "entries"),
        ("api:refund-list", "lines"),
    ],
)
def test_queries_stay_constant_with_and_without_expansion(
    api_as, customer, operator, seller, other_seller, django_assert_num_queries, url_name, expansion
):
    for _ in range(4):
        order = paid_order([(seller, 1000, 1), (other_seller, 500, 2)], customer=customer)
        refund_create(order=order)
        payout_with_entries(seller, customer)
    client = api_as(customer if url_name == "api:order-list" else operator)
    url = reverse(url_name)
    client.get(url)  # warm-up: the token's last-used stamp

    for query in ({}, {"expand[]": expansion}):
        client.get(url, {"limit": 1, **query})
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as one:
            client.get(url, {"limit": 1, **query})
        with django_assert_num_queries(len(one.captured_queries)):
            page = client.get(url, {"limit": 50, **query})
        assert len(page.json()["data"]) >= 4
