"""One pagination on every list: Stripe's cursor (``limit``, ``starting_after``,
``ending_before``, ``has_more``), newest first, stable while rows are added."""

import pytest
from django.urls import get_resolver, reverse

from payments.collection.refund_requests import refund_request_create
from payments.collection.refunds import refund_create
from payments.models import Payout, PayoutPolicy, PayoutRun, WebhookEndpoint
from payments.payouts.holds import seller_order_hold_release
from tests.factories import (
    CategoryFactory,
    CommissionRuleFactory,
    ListingFeeFactory,
    ProductFactory,
    SellerFactory,
    SellerPlanFactory,
    ServiceFeeFactory,
)
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


def list_endpoints():
    """Every ``api:*-list`` route: a list added later is walked too."""
    api = get_resolver().namespace_dict["api"][1]
    return sorted(
        name for name in api.reverse_dict if isinstance(name, str) and name.endswith("-list")
    )


@pytest.fixture
def rows(seller, customer, operator):
    """Five or more rows in every list the operator (or the customer: orders) reads."""
    for _ in range(5):
        extra = SellerFactory()
        CategoryFactory()
        ProductFactory(seller=extra)
        order = paid_order([(extra, 500, 1)], customer=customer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        Payout.objects.create(seller=extra, currency="USD", amount_minor=450, period="p")
        CommissionRuleFactory(scope="seller", seller=extra, percentage_bps=300)
        PayoutPolicy.objects.create(seller=extra)
        PayoutRun.objects.create(trigger="api", started_by=operator)
        refund_request_create(customer=customer, order_line=order.lines.get(), reason="No")
        refund_create(order=paid_order([(extra, 700, 1)], customer=customer))
        WebhookEndpoint.objects.create(
            owner=operator, url="https://example.com/h", events=["order.paid"]
        )
        SellerPlanFactory()
        ListingFeeFactory()
        ServiceFeeFactory()


def client_for(endpoint, api_as, customer, operator):
    return api_as(customer if endpoint == "order-list" else operator)


def walk_forward(client, url, limit=2):
    seen, after = [], None
    while True:
        query = {"limit": limit, **({"starting_after": after} if after else {})}
        page = client.get(url, query)
        assert page.status_code == 200, page.content
        body = page.json()
        assert body["object"] == "list" and body["url"] == url
        assert len(body["data"]) <= limit
        seen += [row["id"] for row in body["data"]]
        if not body["has_more"]:
            return seen
        after = body["data"][-1]["id"]


def walk_back(client, url, before, limit=2):
    seen = []
    while True:
        body = client.get(url, {"limit": limit, "ending_before": before}).json()
        seen = [row["id"] for row in body["data"]] + seen
        if not body["has_more"]:
            return seen
        before = body["data"][0]["id"]


@pytest.mark.parametrize("endpoint", list_endpoints())
def test_every_list_walks_forward_and_back_and_gives_every_row_once(
    rows, api_as, customer, operator, endpoint
):
    client = client_for(endpoint, api_as, customer, operator)
    url = reverse(f"api:{endpoint}")
    everything = client.get(url, {"limit": 100}).json()

    forward = walk_forward(client, url)

    assert not everything["has_more"]
    all_ids = [row["id"] for row in everything["data"]]
    assert forward == all_ids
    assert len(set(forward)) == len(forward)
    if endpoint not in ("event-list",):  # events are only what the rows above published
        assert len(forward) >= 5
    if forward and isinstance(forward[0], int):
        assert forward == sorted(forward, reverse=True)  # newest first by id
    if len(forward) > 1:
        assert walk_back(client, url, forward[-1]) == forward[:-1]


def test_rows_added_between_pages_are_neither_skipped_nor_repeated(
    api_as, customer, seller, other_seller
):
    client = api_as(customer)
    url = reverse("api:order-list")
    before = [paid_order([(seller, 1000, 1)], customer=customer).pk for _ in range(5)]

    first = client.get(url, {"limit": 2}).json()
    added = [paid_order([(other_seller, 900, 1)], customer=customer).pk for _ in range(3)]
    after = first["data"][-1]["id"]
    following = []
    while True:
        body = client.get(url, {"limit": 2, "starting_after": after}).json()
        following += [row["id"] for row in body["data"]]
        if not body["has_more"]:
            break
        after = body["data"][-1]["id"]
    newer = client.get(url, {"limit": 10, "ending_before": first["data"][0]["id"]}).json()

    assert [row["id"] for row in first["data"]] + following == sorted(before, reverse=True)
    assert [row["id"] for row in newer["data"]] == sorted(added, reverse=True)
    assert newer["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "null"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": " 2"}, "limit"),
        ({"limit": ["2", "3"]}, "limit"),
        ({"starting_after": "abc"}, "starting_after"),
        ({"starting_after": ""}, "starting_after"),
        ({"starting_after": "0"}, "starting_after"),
        ({"starting_after": "1.0"}, "starting_after"),
        ({"starting_after": str(2**63)}, "starting_after"),
        ({"ending_before": "null"}, "ending_before"),
        ({"starting_after": "1", "ending_before": "2"}, "ending_before"),
    ],
)
def test_bad_pagination_parameters_are_a_400_naming_the_parameter(
    api_as, customer, seller, query, param
):
    paid_order([(seller, 1000, 1)], customer=customer)
    answer = api_as(customer).get(reverse("api:order-list"), query)

    assert answer.status_code == 400
    assert answer["Content-Type"].startswith("application/problem+json")
    assert answer.json()["code"] and answer.json()["param"] == param


def test_a_cursor_outside_the_callers_list_is_missing_whether_or_not_it_exists(
    api_as, seller, other_seller
):
    mine = Payout.objects.create(seller=seller, currency="USD", amount_minor=1, period="p")
    theirs = Payout.objects.create(seller=other_seller, currency="USD", amount_minor=1, period="p")
    client = api_as(seller.user)
    url = reverse("api:payout-list")

    other = client.get(url, {"starting_after": theirs.pk})
    nowhere = client.get(url, {"ending_before": theirs.pk + 1000})
    own = client.get(url, {"starting_after": mine.pk})

    for answer, param in ((other, "starting_after"), (nowhere, "ending_before")):
        assert answer.status_code == 400
        body = answer.json()
        assert (body["code"], body["param"]) == ("resource_missing", param)
    # Someone else's payout and no payout at all read the same.
    assert other.json()["detail"].replace(str(theirs.pk), "N") == nowhere.json()["detail"].replace(
        str(theirs.pk + 1000), "N"
    )
    assert own.status_code == 200 and own.json() == {
        "object": "list",
        "url": url,
        "has_more": False,
        "data": [],
    }


def test_a_filter_does_not_hide_the_cursor(api_as, customer, seller):
    orders = [paid_order([(seller, 1000, 1)], customer=customer) for _ in range(3)]
    client = api_as(customer)

    # The cursor order is paid; filtering on another status still pages after it.
    answer = client.get(
        reverse("api:order-list"), {"status": "cancelled", "starting_after": orders[1].pk}
    )

    assert answer.status_code == 200 and answer.json()["data"] == []


def test_a_page_after_a_cursor_costs_one_more_query_whatever_its_length(
    api_as, customer, seller, count_queries
):
    orders = [
        paid_order([(seller, 1000, 1), (seller, 500, 2)], customer=customer) for _ in range(6)
    ]
    client = api_as(customer)
    url = reverse("api:order-list")
    client.get(url)  # warm-up

    first = count_queries(lambda: client.get(url, {"limit": 1}))
    small = count_queries(lambda: client.get(url, {"limit": 1, "starting_after": orders[-1].pk}))
    large = count_queries(lambda: client.get(url, {"limit": 50, "starting_after": orders[-1].pk}))
    back = count_queries(lambda: client.get(url, {"limit": 50, "ending_before": orders[0].pk}))

    assert small == large == back == first + 1


def test_the_schema_describes_the_parameters_and_the_envelope_of_every_list(api):
    schema = api.get(reverse("api:schema"), {"format": "json"}).json()
    lists = {
        path: item["get"]
        for path, item in schema["paths"].items()
        if "get" in item
        and "Paginated"
        in item["get"]["responses"]["200"]["content"]
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
    }

    assert "/api/v1/orders/" in lists and "/api/v1/ledger-entries/" in lists
    assert "/api/v1/refunds/" in lists
    for path, operation in lists.items():
        names = {p["name"] for p in operation["parameters"]}
        assert {"limit", "starting_after", "ending_before"} <= names, path
        assert "page" not in names and "page_size" not in names and "ordering" not in names
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        envelope = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert envelope["required"] == ["object", "url", "has_more", "data"], path
