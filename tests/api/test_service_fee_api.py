"""Operators set the service fee and a rule's volume tiers through the API (each write
one service, validated, audited); everyone else is refused; bad input is a 400 with a
JSON body and nothing saved. Customers see the fee on their cart and orders."""

import pytest
from django.urls import reverse

from marketplace.services.orders import CartItem, place_order
from payments.models import AuditRecord, ServiceFee, VolumeTier
from tests.factories import CommissionRuleFactory, ProductFactory, ServiceFeeFactory

pytestmark = pytest.mark.django_db

FEE = {"name": "Service fee", "currency": "USD", "percentage_bps": 250, "fixed_fee_minor": 30}


def test_an_operator_creates_a_fee_with_a_reason(api_as, operator):
    response = api_as(operator).post(
        reverse("api:service-fee-list"), {**FEE, "reason": "Launch"}, format="json"
    )
    assert response.status_code == 201, response.json()
    fee = ServiceFee.objects.get()
    assert (fee.percentage_bps, fee.fixed_fee_minor) == (250, 30)
    assert AuditRecord.objects.filter(object_id=fee.pk, reason="Launch", via="api").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fixed_fee_minor": -1}, "fixed_fee_minor"),
        ({"percentage_bps": 10_001}, "percentage_bps"),
        ({"fixed_fee_minor": "1.5"}, "fixed_fee_minor"),
        ({"currency": "XXX"}, "currency"),
        ({"percentage_bps": 0, "fixed_fee_minor": 0}, None),
    ],
)
def test_a_bad_fee_is_a_400_and_nothing_is_saved(api_as, operator, change, field):
    response = api_as(operator).post(
        reverse("api:service-fee-list"), {**FEE, **change}, format="json"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    if field:
        assert field in str(body)
    assert not ServiceFee.objects.exists()


@pytest.mark.parametrize("who", ["customer", "seller", None])
def test_only_operators_read_or_set_fees_and_tiers(api_as, customer, seller, who):
    user = {"customer": customer, "seller": seller.user, None: None}[who]
    client = api_as(user)
    rule = CommissionRuleFactory(currency="USD")
    assert client.get(reverse("api:service-fee-list")).status_code in (401, 403)
    assert client.post(reverse("api:service-fee-list"), FEE, format="json").status_code in (
        401,
        403,
    )
    tiers = reverse("api:rule-tiers", args=[rule.pk])
    put = client.put(tiers, {"tiers": [{"from_minor": 0, "percentage_bps": 5}]}, format="json")
    assert put.status_code in (401, 403)
    assert not ServiceFee.objects.exists() and not VolumeTier.objects.exists()


def test_an_operator_replaces_a_rules_tiers(api_as, operator):
    rule = CommissionRuleFactory(currency="USD")
    client = api_as(operator)
    url = reverse("api:rule-tiers", args=[rule.pk])
    body = {
        "tiers": [
            {"from_minor": 100_000, "up_to_minor": None, "percentage_bps": 600},
            {"from_minor": 0, "up_to_minor": 100_000, "percentage_bps": 1000},
        ],
        "reason": "Volume discount",
    }
    response = client.put(url, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["tiers"] == [
        {"from_minor": 0, "up_to_minor": 100_000, "percentage_bps": 1000},
        {"from_minor": 100_000, "up_to_minor": None, "percentage_bps": 600},
    ]
    assert client.get(url).json()["currency"] == "USD"


@pytest.mark.parametrize(
    "tiers",
    [
        [
            {"from_minor": 0, "up_to_minor": 1000, "percentage_bps": 9},
            {"from_minor": 900, "percentage_bps": 5},
        ],
        [
            {"from_minor": 0, "up_to_minor": 1000, "percentage_bps": 9},
            {"from_minor": 1100, "percentage_bps": 5},
        ],
        [{"from_minor": 0, "percentage_bps": 10_001}],
        [{"from_minor": "0", "percentage_bps": 5}],
    ],
)
def test_bad_tiers_are_a_400_and_the_old_ones_stay(api_as, operator, tiers):
    rule = CommissionRuleFactory(currency="USD")
    VolumeTier.objects.create(rule=rule, from_minor=0, percentage_bps=700)
    response = api_as(operator).put(
        reverse("api:rule-tiers", args=[rule.pk]), {"tiers": tiers}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.headers["Content-Type"].startswith("application/")
    assert list(rule.tiers.values_list("percentage_bps", flat=True)) == [700]


def test_tiers_on_a_rule_without_currency_are_refused(api_as, operator):
    rule = CommissionRuleFactory(currency="")
    response = api_as(operator).put(
        reverse("api:rule-tiers", args=[rule.pk]),
        {"tiers": [{"from_minor": 0, "percentage_bps": 500}]},
        format="json",
    )
    assert response.status_code == 400
    assert "currency" in response.content.decode()


def test_customers_see_the_fee_on_their_cart_and_order(api_as, customer, seller):
    ServiceFeeFactory(currency="USD", percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=2_000)
    client = api_as(customer)
    client.post(reverse("api:cart-items"), {"product": product.pk, "quantity": 1}, format="json")
    (group,) = client.get(reverse("api:cart")).json()
    assert (group["subtotal_minor"], group["service_fee_minor"], group["total_minor"]) == (
        2_000,
        200,
        2_200,
    )
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    body = client.get(reverse("api:order-detail", args=[order.pk])).json()
    assert (body["service_fee_minor"], body["total_minor"]) == (200, 2_200)
    assert body["lines"][0]["rule"]["source"] == "rule"


@pytest.mark.parametrize(
    "body",
    [
        {
            "percentage_bps": 100,
            "active_from": "2030-01-01T00:00:00Z",
            "active_until": "2029-01-01T00:00:00Z",
        },
        {"percentage_bps": -1},
        {"percentage_bps": True},
        {"percentage_bps": None},
        {"fixed_fee_minor": 2**63},
        {"currency": "usd"},
        {"currency": ""},
    ],
)
def test_a_bad_service_fee_through_the_api_is_a_400_not_a_500(api_as, operator, body):
    fee = {"name": "Fee", "currency": "USD", "percentage_bps": 250, "fixed_fee_minor": 0}
    response = api_as(operator).post(
        reverse("api:service-fee-list"), {**fee, **body}, format="json"
    )
    assert response.status_code == 400, response.content
    from payments.models import ServiceFee

    assert not ServiceFee.objects.exists()


def test_a_patch_that_zeroes_a_fee_is_a_400_and_keeps_it(api_as, operator):
    fee = ServiceFeeFactory(currency="USD", percentage_bps=250, fixed_fee_minor=0)
    response = api_as(operator).patch(
        reverse("api:service-fee-detail", args=[fee.pk]), {"percentage_bps": 0}, format="json"
    )
    assert response.status_code == 400, response.content
    fee.refresh_from_db()
    assert fee.percentage_bps == 250
