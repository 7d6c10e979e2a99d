"""Every API endpoint × every role: exactly who may read or change what.

Roles: anonymous; a customer who bought from Acme; another customer who bought
from Rival; Acme's seller; Rival's seller; an operator. Another seller's or
customer's object is a 404, a role that may not use an endpoint at all a 403,
no credentials a 401.
"""

import pytest
from django.urls import reverse

from payments.collection.refund_requests import refund_request_create
from payments.collection.refunds import refund_create
from payments.models import Payout, WebhookEndpoint
from payments.payouts.holds import seller_order_hold_release
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "customer", "other_customer", "seller", "other_seller", "operator")
SHIPPING = {"name": "A", "line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"}


@pytest.fixture
def world(settings, seller, other_seller, customer, other_customer, operator, category):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    CommissionRuleFactory(percentage_bps=1000)
    ids = {}
    for who, buyer in ((seller, customer), (other_seller, other_customer)):
        enable_payouts(who)
        ids[f"{who.slug}_product"] = ProductFactory(seller=who, category=category, stock=9).pk
        order = paid_order([(who, 5000, 1)], customer=buyer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        ids[f"{who.slug}_order"] = order.pk
        ids[f"{who.slug}_seller_order"] = order.seller_orders.get().pk
        ids[f"{who.slug}_payout"] = Payout.objects.create(
            seller=who, currency="USD", amount_minor=4500, period="p"
        ).pk
    line = customer.orders.get().lines.get()
    ids["acme_refund_request"] = refund_request_create(
        customer=customer, order_line=line, reason="Broken"
    ).pk
    ids["rival_refund"] = refund_create(order=other_customer.orders.get()).pk
    ids["acme_webhook"] = WebhookEndpoint.objects.create(
        owner=seller.user, seller=seller, url="http://127.0.0.1:9/x", events=["order.paid"]
    ).pk
    users = {
        "anonymous": None,
        "customer": customer,
        "other_customer": other_customer,
        "seller": seller.user,
        "other_seller": other_seller.user,
        "operator": operator,
    }
    return ids, users


TODAY = {"start": "2026-11-01", "end": "2026-11-30", "currency": "USD"}
# (method, url name, url args (keys of the world's ids), body or query, expected per ROLES)
MATRIX = [
    ("get", "api:schema", [], {"format": "json"}, (200, 200, 200, 200, 200, 200)),
    ("get", "api:category-list", [], {}, (200, 200, 200, 200, 200, 200)),
    ("get", "api:product-list", [], {}, (200, 200, 200, 200, 200, 200)),
    ("get", "api:product-detail", ["acme_product"], {}, (200, 200, 200, 200, 200, 200)),
    ("get", "api:cart", [], {}, (401, 200, 200, 200, 200, 200)),
    ("get", "api:order-list", [], {}, (401, 200, 200, 200, 200, 200)),
    ("get", "api:order-detail", ["acme_order"], {}, (401, 200, 404, 404, 404, 404)),
    ("get", "api:seller-order-list", [], {}, (401, 403, 403, 200, 200, 200)),
    ("get", "api:seller-order-detail", ["acme_seller_order"], {}, (401, 403, 403, 200, 404, 200)),
    ("get", "api:refund-request-list", [], {}, (401, 403, 403, 200, 200, 200)),
    (
        "get",
        "api:refund-request-detail",
        ["acme_refund_request"],
        {},
        (401, 403, 403, 200, 404, 200),
    ),
    ("get", "api:payout-list", [], {}, (401, 403, 403, 200, 200, 200)),
    ("get", "api:payout-detail", ["acme_payout"], {}, (401, 403, 403, 200, 404, 200)),
    ("get", "api:payout-run-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:refund-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:event-list", [], {}, (401, 403, 403, 200, 200, 200)),
    ("get", "api:refund-detail", ["rival_refund"], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:payout-policy-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:commission-rule-list", [], {}, (401, 403, 403, 200, 200, 200)),
    ("get", "api:service-fee-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:my-balance", [], {}, (401, 403, 403, 200, 200, 404)),
    ("get", "api:seller-balance", ["slug:acme"], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:my-statement", [], TODAY, (401, 403, 403, 200, 200, 404)),
    ("get", "api:seller-statement", ["slug:acme"], TODAY, (401, 403, 403, 403, 403, 200)),
    ("get", "api:ledger-entry-list", [], {}, (401, 403, 403, 200, 200, 200)),
    ("get", "api:webhook-endpoint-list", [], {}, (401, 403, 403, 200, 200, 200)),
    (
        "get",
        "api:webhook-endpoint-detail",
        ["acme_webhook"],
        {},
        (401, 403, 403, 200, 404, 200),
    ),
    ("get", "api:revenue-report", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:seller-plan-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:listing-fee-list", [], {}, (401, 403, 403, 403, 403, 200)),
    ("get", "api:my-plan", [], {}, (401, 403, 403, 200, 200, 404)),
    ("get", "api:my-plan-charges", [], {}, (401, 403, 403, 200, 200, 404)),
    ("get", "api:seller-plan-change", ["slug:acme"], {}, (401, 403, 403, 403, 403, 200)),
    (
        "get",
        "api:reconciliation",
        [],
        {"start": "2026-11-29", "end": "2026-11-30"},
        (401, 403, 403, 403, 403, 200),
    ),
    (
        "post",
        "api:product-list",
        [],
        {"title": "New", "category": "books", "price_minor": 100, "currency": "USD", "stock": 1},
        (401, 403, 403, 201, 201, 403),
    ),
    (
        "post",
        "api:order-list",
        [],
        {"items": [{"product": "acme_product", "quantity": 1}], "shipping": SHIPPING},
        (401, 201, 201, 201, 201, 201),
    ),
    ("post", "api:order-cancel", ["acme_order"], {}, (401, 409, 404, 404, 404, 404)),
    (
        "post",
        "api:cart-items",
        [],
        {"product": "acme_product", "quantity": 1},
        (401, 200, 200, 200, 200, 200),
    ),
    ("post", "api:seller-order-ship", ["acme_seller_order"], {}, (401, 403, 403, 200, 404, 200)),
    (
        "post",
        "api:refund-request-approve",
        ["acme_refund_request"],
        {},
        (401, 403, 403, 200, 404, 200),
    ),
    ("post", "api:payout-hold", ["acme_payout"], {"reason": "KYC"}, (401, 403, 403, 403, 403, 200)),
    ("post", "api:payout-run-list", [], {"dry_run": True}, (401, 403, 403, 403, 403, 200)),
    (
        "post",
        "api:commission-rule-list",
        [],
        {"scope": "default", "percentage_bps": 500},
        (401, 403, 403, 403, 403, 201),
    ),
    ("post", "api:payout-policy-list", [], {"seller": None}, (401, 403, 403, 403, 403, 201)),
    (
        "post",
        "api:webhook-endpoint-list",
        [],
        {"url": "http://127.0.0.1:9/hook", "events": ["payout.paid"]},
        (401, 403, 403, 201, 201, 201),
    ),
    (
        "patch",
        "api:order-detail",
        ["acme_order"],
        {"metadata": {"a": "1"}},
        (401, 200, 404, 404, 404, 404),
    ),
    (
        "patch",
        "api:payout-detail",
        ["acme_payout"],
        {"metadata": {"a": "1"}},
        (401, 403, 403, 403, 403, 200),
    ),
    (
        "patch",
        "api:refund-detail",
        ["rival_refund"],
        {"metadata": {"a": "1"}},
        (401, 403, 403, 403, 403, 200),
    ),
]


def _resolve(value, ids):
    if isinstance(value, str) and value in ids:
        return ids[value]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


@pytest.mark.parametrize(
    ("method", "name", "args", "data", "role", "expected"),
    [
        (method, name, args, data, role, codes[index])
        for method, name, args, data, codes in MATRIX
        for index, role in enumerate(ROLES)
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_permission_matrix(world, api_as, method, name, args, data, role, expected):
    ids, users = world
    url = reverse(
        name, args=[a.split(":", 1)[1] if a.startswith("slug:") else ids[a] for a in args]
    )
    client = api_as(users[role])

    if method == "get":
        response = client.get(url, data)
    else:
        response = getattr(client, method)(url, _resolve(data, ids), format="json")

    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"


def test_the_matrix_covers_every_list_endpoint():
    from marketplace.api.urls import urlpatterns

    listed = {name for _, name, *_ in MATRIX}
    named = set()
    for pattern in urlpatterns:
        for inner in getattr(pattern, "url_patterns", [pattern]):
            if getattr(inner, "name", None) and inner.name.endswith("-list"):
                named.add(f"api:{inner.name}")
    assert named <= listed, named - listed


def test_someone_elses_endpoint_cannot_be_rotated_tested_read_or_moved(
    api_as, settings, seller, other_seller
):
    from payments.integrations.webhooks import webhook_endpoint_create
    from payments.models import WebhookDelivery, WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    theirs = webhook_endpoint_create(
        owner=other_seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    mine = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/y", events=["order.paid"]
    )
    before = theirs.secret_encrypted
    client = api_as(seller.user)

    def url(name, pk):
        return reverse(f"api:webhook-endpoint-{name}", args=[pk])

    answers = [
        client.post(url("rotate-secret", theirs.pk), {}, format="json"),
        client.post(url("test", theirs.pk), {}, format="json"),
        client.get(url("deliveries", theirs.pk)),
        client.patch(url("detail", theirs.pk), {"description": "x"}, format="json"),
        client.delete(url("detail", theirs.pk)),
    ]
    moved = client.patch(url("detail", mine.pk), {"seller": "rival"}, format="json")

    assert [a.status_code for a in answers] == [404] * 5
    theirs.refresh_from_db()
    assert theirs.secret_encrypted == before and theirs.description == ""
    assert not WebhookDelivery.objects.filter(endpoint=theirs).exists()
    assert moved.status_code in (200, 400)
    assert WebhookEndpoint.objects.get(pk=mine.pk).seller_id == seller.pk
