"""Strict input: integers are JSON integers, an empty filter is a 400 naming it, the
API's limits are the site's, and a 201's Location is the new resource's own address."""

import json

import pytest
from django.urls import reverse

from marketplace.models import IdempotencyRecord, Order, Product
from payments.models import WebhookEndpoint
from tests.api.shapes import SHIPPING
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("quantity", ["2", True, 2.5, None, [2], {"n": 2}])
def test_a_quantity_that_is_not_a_json_integer_is_refused(api_as, customer, quantity):
    mug = ProductFactory(stock=10)
    body = {"items": [{"product": mug.pk, "quantity": quantity}], "shipping": SHIPPING}

    response = api_as(customer).post(
        reverse("api:order-list"), json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400, response.json()
    assert response.json()["param"] == "items[0][quantity]"
    assert Order.objects.count() == 0


def test_a_whole_number_written_with_a_point_is_an_integer_as_json_schema_says(api_as, customer):
    mug = ProductFactory(stock=10)
    raw = json.dumps({"items": [{"product": mug.pk, "quantity": 0}], "shipping": SHIPPING})
    raw = raw.replace('"quantity": 0', '"quantity": 2.0')

    response = api_as(customer).post(
        reverse("api:order-list"), raw, content_type="application/json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["lines"][0]["quantity"] == 2


@pytest.mark.parametrize("product", ["1", True])
def test_a_cart_item_needs_integers_too(api_as, customer, product):
    response = api_as(customer).post(
        reverse("api:cart-items"), {"product": product, "quantity": 1}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["param"] == "product"


def test_a_string_stock_is_refused_when_listing_a_product(api_as, seller, category):
    response = api_as(seller.user).post(
        reverse("api:product-list"),
        {
            "title": "Teapot",
            "category": category.slug,
            "price_minor": 3500,
            "currency": "USD",
            "stock": "3",
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["param"] == "stock"
    assert not Product.objects.exists()


def test_a_string_percentage_is_refused_in_a_commission_rule(api_as, operator):
    response = api_as(operator).post(
        reverse("api:commission-rule-list"),
        {"scope": "default", "percentage_bps": "100"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["param"] == "percentage_bps"


def test_a_seller_named_with_a_nul_is_a_400_not_a_500(api_as, operator):
    """Found by the fuzzer on PostgreSQL, which refuses NUL in any text."""
    response = api_as(operator).post(
        reverse("api:payout-policy-list"), {"seller": "shop\x00", "reason": "x"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["param"] == "seller"


def test_a_category_named_with_a_nul_is_a_400_not_a_500(api_as, seller):
    response = api_as(seller.user).post(
        reverse("api:product-list"),
        {"title": "T", "category": "books\x00", "price_minor": 100, "currency": "USD"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["param"] == "category"


@pytest.mark.parametrize(
    ("currency", "largest"), [("JPY", 10_000_000), ("USD", 1_000_000_000), ("KWD", 10**10)]
)
def test_the_api_caps_a_price_as_the_site_does(api_as, seller, category, currency, largest):
    client = api_as(seller.user)
    body = {"title": "Vase", "category": category.slug, "currency": currency, "stock": 1}

    too_much = client.post(
        reverse("api:product-list"), {**body, "price_minor": largest + 1}, format="json"
    )
    trillion = client.post(
        reverse("api:product-list"), {**body, "price_minor": 10**12}, format="json"
    )
    most = client.post(reverse("api:product-list"), {**body, "price_minor": largest}, format="json")

    assert too_much.status_code == trillion.status_code == 400
    assert too_much.json()["param"] == "price_minor"
    assert most.status_code == 201, most.json()
    assert Product.objects.get().price_minor == largest


def test_changing_a_products_currency_cannot_get_past_the_cap(api_as, seller, category):
    vase = ProductFactory(seller=seller, category=category, currency="USD", price_minor=10**9)

    response = api_as(seller.user).patch(
        reverse("api:product-detail", args=[vase.pk]), {"currency": "JPY"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["param"] == "price_minor"
    vase.refresh_from_db()
    assert vase.currency == "USD"


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("api:payout-list", "created_after="),
        ("api:payout-list", "status="),
        ("api:payout-list", "currency=%20"),
        ("api:ledger-entry-list", "created_before="),
        ("api:order-list", "status="),
        ("api:product-list", "seller="),
    ],
)
def test_an_empty_filter_is_a_400_naming_it(api_as, operator, customer, name, query):
    user = customer if name == "api:order-list" else operator
    response = api_as(user).get(f"{reverse(name)}?{query}")

    assert response.status_code == 400, response.json()
    assert response.json()["param"] == query.split("=")[0]


@pytest.mark.parametrize("value", ["-150", "maybe", "1", "True"])
def test_a_boolean_filter_takes_true_or_false_only(api_as, customer, value):
    response = api_as(customer).get(reverse("api:product-list"), {"in_stock": value})

    assert response.status_code == 400, response.json()
    assert response.json()["param"] == "in_stock"


def test_in_stock_true_lists_only_what_is_in_stock(api_as, customer, seller, category):
    from tests.factories import ProductFactory

    ProductFactory(seller=seller, category=category, stock=0)
    stocked = ProductFactory(seller=seller, category=category, stock=3)
    client = api_as(customer)

    listed = client.get(reverse("api:product-list"), {"in_stock": "true"}).json()["data"]
    everything = client.get(reverse("api:product-list"), {"in_stock": "false"}).json()["data"]

    assert [row["id"] for row in listed] == [stocked.pk]
    assert len(everything) == 2


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"start": "", "period": "day"}, "start"),
        ({"period": ""}, "period"),
        ({"end": "0211-06-27", "start": "", "period": ""}, "period"),
    ],
)
def test_an_empty_report_parameter_is_refused_not_ignored(api_as, operator, query, param):
    response = api_as(operator).get(reverse("api:revenue-report"), query)

    assert response.status_code == 400, response.json()
    assert param in response.json()["errors"]


def test_a_filter_left_out_or_given_still_filters(api_as, operator):
    client = api_as(operator)

    assert client.get(reverse("api:payout-list")).status_code == 200
    assert client.get(reverse("api:payout-list"), {"status": "paid"}).status_code == 200


def test_a_created_webhook_endpoints_location_is_its_own_api_address(api_as, seller, settings):
    # Finding 4: Location was the receiver's URL, so a client following it sent its
    # token to the receiver's host.
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True

    response = api_as(seller.user).post(
        reverse("api:webhook-endpoint-list"),
        {"url": "http://127.0.0.1:9/receiver", "events": ["order.paid"]},
        format="json",
    )

    assert response.status_code == 201, response.json()
    endpoint = WebhookEndpoint.objects.get()
    assert response["Location"] == reverse("api:webhook-endpoint-detail", args=[endpoint.pk])
    assert "127.0.0.1:9" not in response["Location"]


def test_a_created_orders_location_is_its_own_api_address(api_as, customer):
    mug = ProductFactory(stock=10)
    body = {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING}

    response = api_as(customer).post(reverse("api:order-list"), body, format="json")

    assert response.status_code == 201
    assert response["Location"] == reverse("api:order-detail", args=[response.json()["id"]])


def test_a_201_of_an_action_has_no_location_of_another_resource(api_as, customer):
    """A 201 that is not the view's own create (a refund request made under an order)
    carries no Location rather than a wrong one."""
    from tests.factories import SellerFactory
    from tests.money_helpers import paid_order

    order = paid_order([(SellerFactory(), 2000, 1)], customer=customer)
    line = order.lines.get()

    response = api_as(customer).post(
        reverse("api:order-refund-request", args=[order.pk, line.pk]),
        {"reason": "Broken"},
        format="json",
    )

    assert response.status_code == 201
    assert not response.has_header("Location")


def test_every_operation_documents_its_problem_answers(api):
    schema = api.get(reverse("api:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert "param" in schema["components"]["schemas"]["Problem"]["properties"]
    payouts = schema["paths"]["/api/v1/payouts/"]["get"]
    run = next(p for p in payouts["parameters"] if p["name"] == "run")
    assert run["schema"]["minimum"] == 1  # ?run=0 was schema-valid, and a 400
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for code in ("401", "403", "404", "429"):
                assert code in responses, (method, path, code)
            queried = any(p["in"] in ("query", "header") for p in operation.get("parameters", []))
            if operation.get("requestBody") or queried:
                assert "400" in responses, (method, path)
            problem = responses["429"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(
    ("name", "kwargs", "body"),
    [
        (
            "api:webhook-endpoint-list",
            {},
            {"url": "https://example.com:99999/", "events": ["order.paid"]},
        ),
        (
            "api:product-list",
            {},
            {
                "title": "X",
                "category": "books",
                "price_minor": 2**62,
                "currency": "USD",
                "stock": 1,
            },
        ),
    ],
)
def test_bad_input_is_a_400_not_a_500(api_as, seller, category, name, kwargs, body):
    response = api_as(seller.user).post(reverse(name, kwargs=kwargs), body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("name", ["api:revenue-report", "api:reconciliation"])
def test_far_future_dates_are_a_400(api_as, operator, name):
    response = api_as(operator).get(reverse(name), {"start": "9999-12-01", "end": "9999-12-31"})
    assert response.status_code == 400


@pytest.mark.parametrize("body", [DEEP, '{"items": ' + DEEP + "}"], ids=["array", "in-object"])
@pytest.mark.parametrize("key", [None, "deep-1"], ids=["no-key", "with-key"])
def test_json_nested_too_deeply_is_a_parse_error_not_a_500(api_as, customer, body, key):
    """Python's JSON decoder raises RecursionError (not ValueError) on deep nesting."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    answer = api_as(customer).post(
        reverse("api:order-list"), body, content_type="application/json", **headers
    )

    assert answer.status_code == 400, answer.content[:300]
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "parse_error"
    assert not IdempotencyRecord.objects.exists()  # refused before it ran: the key is free
