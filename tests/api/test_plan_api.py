"""The plans and listing fees API: operators set them through the services, a seller
reads and changes their own plan; every endpoint's permissions; bad input is a 4xx
problem with nothing saved."""

import pytest
from django.urls import reverse

from payments.models import ListingFee, SellerPlan, SellerPlanCharge, SellerPlanChoice
from payments.revenue.plans import seller_plan_change
from tests.factories import SellerPlanFactory

pytestmark = pytest.mark.django_db

PLAN = {"name": "Pro", "currency": "USD", "monthly_fee_minor": 2900, "commission_bps": 500}
FEE = {"scope": "default", "currency": "USD", "amount_minor": 50, "listing_days": 30}


@pytest.fixture
def users(seller, other_seller, customer, operator):
    return {
        "anonymous": None,
        "customer": customer,
        "seller": seller.user,
        "other_seller": other_seller.user,
        "operator": operator,
    }


@pytest.mark.parametrize(
    ("method", "name", "args", "body", "expected"),
    [
        ("get", "api:seller-plan-list", [], None, (401, 403, 403, 403, 200)),
        ("post", "api:seller-plan-list", [], PLAN, (401, 403, 403, 403, 201)),
        ("get", "api:listing-fee-list", [], None, (401, 403, 403, 403, 200)),
        ("post", "api:listing-fee-list", [], FEE, (401, 403, 403, 403, 201)),
        ("get", "api:my-plan", [], None, (401, 403, 200, 200, 404)),
        ("post", "api:my-plan", [], "plan", (401, 403, 200, 200, 404)),
        ("get", "api:my-plan-charges", [], None, (401, 403, 200, 200, 404)),
        ("get", "api:seller-plan-change", ["acme"], None, (401, 403, 403, 403, 200)),
        ("post", "api:seller-plan-change", ["acme"], "plan", (401, 403, 403, 403, 200)),
    ],
)
@pytest.mark.parametrize("role", ["anonymous", "customer", "seller", "other_seller", "operator"])
def test_who_may_use_each_plan_endpoint(api_as, users, method, name, args, body, expected, role):
    plan = SellerPlanFactory()
    data = {"plan": plan.pk} if body == "plan" else body
    client = api_as(users[role])

    response = getattr(client, method)(reverse(name, args=args), data, format="json")

    wanted = expected[["anonymous", "customer", "seller", "other_seller", "operator"].index(role)]
    assert response.status_code == wanted, response.content[:300]


def test_an_operator_creates_and_updates_a_plan_with_a_reason(api_as, operator):
    client = api_as(operator)
    created = client.post(
        reverse("api:seller-plan-list"), {**PLAN, "reason": "launch"}, format="json"
    )
    assert created.status_code == 201
    url = reverse("api:seller-plan-detail", args=[created.json()["id"]])

    updated = client.patch(url, {"monthly_fee_minor": 3900, "reason": "price"}, format="json")

    assert updated.status_code == 200
    assert SellerPlan.objects.get().monthly_fee_minor == 3900


@pytest.mark.parametrize(
    "bad",
    [{"monthly_fee_minor": -1}, {"monthly_fee_minor": 1.5}, {"commission_bps": 10_001}],
)
def test_a_bad_plan_is_a_400_and_nothing_is_saved(api_as, operator, bad):
    response = api_as(operator).post(
        reverse("api:seller-plan-list"), {**PLAN, **bad}, format="json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert not SellerPlan.objects.exists()


def test_a_bad_listing_fee_is_a_400_and_nothing_is_saved(api_as, operator):
    response = api_as(operator).post(
        reverse("api:listing-fee-list"), {**FEE, "scope": "category"}, format="json"
    )

    assert response.status_code == 400
    assert not ListingFee.objects.exists()


def test_a_seller_changes_plan_and_reads_the_charges(api_as, seller):
    plan = SellerPlanFactory(name="Pro")
    SellerPlanFactory(name="Euro", currency="EUR")
    client = api_as(seller.user)

    before = client.get(reverse("api:my-plan")).json()
    changed = client.post(reverse("api:my-plan"), {"plan": plan.pk}, format="json")
    charges = client.get(reverse("api:my-plan-charges")).json()

    assert before["plan"] is None
    assert [p["name"] for p in before["offered"]] == ["Pro"]
    assert changed.status_code == 200
    assert changed.json()["plan"]["name"] == "Pro"
    charge = SellerPlanCharge.objects.get()
    assert charges["data"][0]["amount_minor"] == charge.amount_minor
    assert charges["data"][0]["plan_name"] == "Pro"


def test_a_plan_in_another_currency_is_a_400_and_nothing_changes(api_as, seller):
    plan = SellerPlanFactory(currency="EUR")

    response = api_as(seller.user).post(reverse("api:my-plan"), {"plan": plan.pk}, format="json")

    assert response.status_code == 400
    assert "EUR" in response.content.decode()
    assert not SellerPlanChoice.objects.exists()


def test_an_unknown_plan_is_a_400(api_as, seller):
    response = api_as(seller.user).post(reverse("api:my-plan"), {"plan": 999}, format="json")

    assert response.status_code == 400
    assert not SellerPlanChoice.objects.exists()


def test_a_seller_sees_only_their_own_charges(api_as, seller, other_seller):
    from payments.revenue.plans import seller_plan_change

    seller_plan_change(seller=other_seller, plan=SellerPlanFactory(), by=other_seller.user)

    assert api_as(seller.user).get(reverse("api:my-plan-charges")).json()["data"] == []


@pytest.mark.django_db
def test_a_plan_in_the_wrong_currency_is_refused_through_the_api_with_nothing_saved(seller, api_as):
    current = SellerPlanFactory(currency="USD", monthly_fee_minor=1000)
    seller_plan_change(seller=seller, plan=current, by=seller.user)
    euro = SellerPlanFactory(currency="EUR")
    charges = SellerPlanCharge.objects.count()

    response = api_as(seller.user).post(reverse("api:my-plan"), {"plan": euro.pk}, format="json")

    assert 400 <= response.status_code < 500, response.content
    assert response.json()
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == current
    assert SellerPlanCharge.objects.count() == charges


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"monthly_fee_minor": -1},
        {"monthly_fee_minor": "29.00"},
        {"monthly_fee_minor": "2900"},
        {"monthly_fee_minor": 10.5},
        {"commission_bps": -5},
        {"commission_bps": 10_001},
        {"currency": "XXX"},
    ],
)
def test_a_bad_plan_through_the_api_is_a_4xx_with_nothing_saved(operator, api_as, body):
    plan = {"name": "Pro", "currency": "USD", "monthly_fee_minor": 2900, "commission_bps": 500}

    response = api_as(operator).post(
        reverse("api:seller-plan-list"), {**plan, **body}, format="json"
    )

    assert 400 <= response.status_code < 500, response.content
    assert not SellerPlan.objects.exists()


@pytest.mark.django_db
def test_a_listing_fee_ending_before_it_starts_is_a_4xx_through_the_api(operator, api_as):
    response = api_as(operator).post(
        reverse("api:listing-fee-list"),
        {
            "scope": "default",
            "currency": "USD",
            "amount_minor": 50,
            "listing_days": 30,
            "active_from": "2026-12-10T00:00:00Z",
            "active_until": "2026-12-01T00:00:00Z",
        },
        format="json",
    )

    assert 400 <= response.status_code < 500, response.content
