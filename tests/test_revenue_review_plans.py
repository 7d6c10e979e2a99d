"""Second reader's review of issue 19's seller plans and listing fees: races (a plan
change against billing or another change, two activations of one product, a listing
against a seller's cancellation), fees charged twice or never, exact proration in
JPY/USD/KWD, a fee against a payout, and bad input refused with nothing saved."""

import threading
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from marketplace.models import Product
from marketplace.services import orders as order_services
from marketplace.services import products as product_services
from marketplace.services.products import product_set_active, products_set_active_bulk
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import (
    ListingCharge,
    Payout,
    SellerPlan,
    SellerPlanCharge,
    SellerPlanChoice,
)
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.revenue.listing_fees import listings_renew_due, product_listing_charge
from payments.revenue.plans import seller_plan_bill, seller_plan_change, seller_plans_bill
from tests.factories import (
    CommissionRuleFactory,
    ListingFeeFactory,
    ProductFactory,
    SellerPlanFactory,
)
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.test_concurrency_money import run_together

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
DEC_11 = datetime(2026, 12, 11, tzinfo=UTC)
DEC_21 = datetime(2026, 12, 21, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
DECEMBER = 31 * 86_400


@pytest.fixture
def utc(settings):
    settings.TIME_ZONE = "UTC"


def _half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def _paid_for_plans(seller):
    """What the seller's plan charges less credits come to."""
    total = 0
    for charge in SellerPlanCharge.objects.filter(seller=seller):
        total += charge.amount_minor if charge.kind == "charge" else -charge.amount_minor
    return total


# --- Proration, exact, in JPY / USD / KWD ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "old_fee", "new_fee", "credit", "charge"),
    [
        # 21 of December's 31 days left on the 11th: fee * 21 / 31, half-up.
        ("JPY", 3000, 1000, 2032, 677),  # 2032.26, 677.42
        ("USD", 2900, 999, 1965, 677),  # 1964.52, 676.74
        ("KWD", 29500, 7250, 19984, 4911),  # 19983.87, 4911.29
    ],
)
def test_proration_figures_are_exact_in_each_currency(
    utc, seller, currency, old_fee, new_fee, credit, charge
):
    seller.default_currency = currency
    seller.save()
    old = SellerPlanFactory(currency=currency, monthly_fee_minor=old_fee)
    new = SellerPlanFactory(currency=currency, monthly_fee_minor=new_fee)
    SellerPlanChoice.objects.create(
        seller=seller, plan=old, started_at=datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert seller_plan_bill(seller=seller, at=DEC_1).amount_minor == old_fee

    seller_plan_change(seller=seller, plan=new, by=seller.user, at=DEC_11)

    got = {
        (c.plan_id, c.kind): c.amount_minor for c in SellerPlanCharge.objects.filter(seller=seller)
    }
    assert got == {
        (old.pk, "charge"): old_fee,
        (old.pk, "credit"): credit,
        (new.pk, "charge"): charge,
    }
    assert credit == _half_up(Fraction(old_fee * 21, 31))
    assert charge == _half_up(Fraction(new_fee * 21, 31))
    assert seller_balance(seller=seller, currency=currency).available == (
        -(old_fee - credit + charge)
    )
    assert ledger_check().problems == []


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_a_month_there_and_back_charges_each_span_once_and_billing_adds_nothing(
    utc, seller, currency
):
    """A -> B on the 11th, B -> A on the 21st: the seller pays A for 10 + 11 days and B
    for 10 days (each within a minor unit per piece); billing again that month charges
    nothing more; January's billing charges A's whole fee once."""
    seller.default_currency = currency
    seller.save()
    a = SellerPlanFactory(currency=currency, monthly_fee_minor=2999)
    b = SellerPlanFactory(currency=currency, monthly_fee_minor=12345)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1 - timedelta(days=3))
    seller_plans_bill(now=DEC_1 + timedelta(hours=1))
    seller_plan_change(seller=seller, plan=b, by=seller.user, at=DEC_11)
    seller_plan_change(seller=seller, plan=a, by=seller.user, at=DEC_21)

    assert seller_plans_bill(now=DEC_21 + timedelta(days=5)) == 0
    assert seller_plan_bill(seller=seller, at=DEC_21 + timedelta(days=6)).kind == "charge"
    exact = Fraction(2999 * 21 + 12345 * 10, 31)
    assert abs(_paid_for_plans(seller) - exact) <= 3
    assert SellerPlanCharge.objects.count() == 5  # A, A credit, B, B credit, A again

    assert seller_plans_bill(now=JAN_1 + timedelta(hours=1)) == 1
    assert seller_plans_bill(now=JAN_1 + timedelta(hours=2)) == 0
    january = SellerPlanCharge.objects.get(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert (january.plan, january.amount_minor) == (a, 2999)
    assert ledger_check().problems == []


@pytest.mark.django_db
def test_a_change_in_a_month_not_yet_billed_charges_the_old_plan_once(utc, seller):
    """Billing has not run for January when the seller changes plan on the 1st at noon:
    the old plan is charged for January (caught up) and credited for the rest, once;
    billing later does not charge January again."""
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)
    noon = JAN_1 + timedelta(hours=12)

    seller_plan_change(seller=seller, plan=b, by=seller.user, at=noon)
    assert seller_plans_bill(now=noon + timedelta(hours=1)) == 0

    january = SellerPlanCharge.objects.filter(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert sorted((c.plan_id, c.kind, c.amount_minor) for c in january) == sorted(
        [(a.pk, "charge", 3100), (a.pk, "credit", 3050), (b.pk, "charge", 6100)]
    )


# --- Bad input: nothing saved -----------------------------------------------------------


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
def test_a_plan_in_the_wrong_currency_is_refused_on_the_sellers_page(seller, client):
    euro = SellerPlanFactory(currency="EUR")
    client.force_login(seller.user)

    response = client.post(reverse("marketplace:seller_plan"), {"plan": euro.pk})

    assert response.status_code == 302
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()


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


@pytest.mark.django_db
def test_changing_a_chosen_plans_currency_in_the_admin_is_a_form_error(operator_client, seller):
    plan = SellerPlanFactory(currency="USD", monthly_fee_minor=2900, commission_bps=500)
    seller_plan_change(seller=seller, plan=plan, by=seller.user)

    response = operator_client.post(
        reverse("admin:payments_sellerplan_change", args=[plan.pk]),
        {
            "name": plan.name,
            "description": "",
            "currency": "EUR",
            "is_offered": "on",
            "monthly_fee": "29.00",
            "commission": "5",
            "change_reason": "Move to euros",
        },
    )

    assert response.status_code == 200
    assert "currency cannot change" in response.content.decode()
    plan.refresh_from_db()
    assert plan.currency == "USD"


# --- Listing fees: charged once, never for a hidden period --------------------------------


@pytest.mark.django_db
def test_an_operator_listing_products_again_charges_no_period_they_were_hidden(seller):
    """Listed 100 days ago for 30 days and hidden by the seller within those 30 days (the
    daily renewals skip a hidden product, so its listing ended 70 days ago: the state
    below); an operator lists it again today with the admin's bulk action."""
    ListingFeeFactory(listing_days=30, amount_minor=50)
    now = timezone.now()
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=now - timedelta(days=100))
    product_set_active(product=product, seller=seller, active=False)

    products_set_active_bulk(products=Product.objects.filter(pk=product.pk), active=True)
    for _ in range(3):  # the daily renewals that follow
        listings_renew_due(now=timezone.now())

    product.refresh_from_db()
    hidden_until = now - timedelta(seconds=5)
    charged_while_hidden = ListingCharge.objects.filter(
        product=product, listed_from__gt=now - timedelta(days=100), listed_from__lt=hidden_until
    )
    assert not charged_while_hidden.exists(), list(
        charged_while_hidden.values_list("listed_from", "listed_until")
    )
    assert product.listed_until is not None and product.listed_until > timezone.now()


@pytest.mark.django_db
def test_listing_again_after_a_hidden_spell_starts_a_new_period_now(seller):
    ListingFeeFactory(listing_days=30, amount_minor=50)
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=timezone.now() - timedelta(days=100))
    product_set_active(product=product, seller=seller, active=False)

    before = timezone.now().replace(microsecond=0)
    product_set_active(product=product, seller=seller, active=True)
    assert listings_renew_due(now=timezone.now()) == 0

    latest = ListingCharge.objects.filter(product=product).order_by("-listed_from").first()
    assert latest.kind == "listed" and latest.listed_from >= before
    assert ListingCharge.objects.filter(product=product).count() == 2
    assert ledger_check().problems == []


# --- Fee and payout, sequential ---------------------------------------------------------


@pytest.mark.django_db
def test_a_fee_charged_while_a_payout_is_open_is_netted_from_the_next(run, seller):
    """The payout was planned before the fee, which is charged before it is sent: no
    overpayment, and what the seller is paid in all is what they earned less the fee."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    first = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=first.seller_orders.get())
    run_payouts(sellers=[seller])  # scheduled, not sent yet
    payout = Payout.objects.get()
    seller_plan_change(seller=seller, plan=SellerPlanFactory(commission_bps=None), by=seller.user)
    fee = SellerPlanCharge.objects.get().amount_minor
    payout_send(payout=payout)

    second = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=second.seller_orders.get())
    Payout.objects.update(created_at=timezone.now() - timedelta(days=2))
    run_payouts(sellers=[seller], now=timezone.now() + timedelta(days=1))

    shares = sum(o.lines.get().seller_share_minor for o in (first, second))
    # The open payout no longer fits at sending (the fee came first): it is cancelled,
    # not sent, and the next run pays both sales less the fee.
    kept = Payout.objects.exclude(status__in=("cancelled", "failed"))
    paid = sum(p.amount_minor for p in kept)
    assert paid == shares - fee
    assert ledger_check().problems == []


# --- Races on PostgreSQL ----------------------------------------------------------------


def together(*works):
    return run_together(len(works), *works)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_activations_of_one_product_at_once_charge_one_listing(seller):
    ListingFeeFactory(listing_days=30, amount_minor=70)
    product = ProductFactory(seller=seller, is_active=False)

    def activate():
        mine = Product.objects.get(pk=product.pk)
        return product_set_active(product=mine, seller=seller, active=True)

    results = together(activate, activate, activate)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert ListingCharge.objects.filter(product=product).count() == 1
    assert seller_balance(seller=seller, currency="USD").available == -70
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_plan_change_racing_the_monthly_billing_at_the_period_start(utc, seller):
    """Billing for January and a change on January 1st at once: January's old-plan fee
    is charged once and credited once; the total is the prorated figure whatever the
    order."""
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)
    noon = JAN_1 + timedelta(hours=12)

    results = together(
        lambda: seller_plans_bill(now=noon),
        lambda: seller_plan_change(seller=seller, plan=b, by=seller.user, at=noon),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    january = SellerPlanCharge.objects.filter(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert sorted((c.plan_id, c.kind, c.amount_minor) for c in january) == sorted(
        [(a.pk, "charge", 3100), (a.pk, "credit", 3050), (b.pk, "charge", 6100)]
    )
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_changes_to_different_plans_at_once_prorate_once_each(utc, seller):
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    c = SellerPlanFactory(monthly_fee_minor=310)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)

    results = together(
        lambda: seller_plan_change(seller=seller, plan=b, by=seller.user),
        lambda: seller_plan_change(seller=seller, plan=c, by=seller.user),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    # Each choice is charged at most once and credited at most once.
    for choice in SellerPlanChoice.objects.all():
        kinds = list(SellerPlanCharge.objects.filter(choice=choice).values_list("kind", flat=True))
        assert kinds.count("charge") <= 1 and kinds.count("credit") <= 1, kinds
    assert SellerPlanChoice.objects.filter(ended_at__isnull=True).count() == 1
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_listing_a_product_again_while_its_seller_cancels_an_order_does_not_deadlock(
    seller, monkeypatch
):
    CommissionRuleFactory(percentage_bps=1000)
    ListingFeeFactory(listing_days=30, amount_minor=50)
    order = paid_order([(seller, 1000, 1)])
    seller_order = order.seller_orders.get()
    product = Product.objects.get(pk=order.lines.get().product_id)
    Product.objects.filter(pk=product.pk).update(is_active=False, listed_until=None)
    product_saved, money_locked = threading.Event(), threading.Event()
    real_refund_create, real_listed = order_services.refund_create, product_services._listed

    def refund_create(**kwargs):
        refund = real_refund_create(**kwargs)  # the seller's money lock is held now
        money_locked.set()
        product_saved.wait(3)
        return refund

    def listed(product):
        product_saved.set()  # the product row is locked by its UPDATE now
        money_locked.wait(3)
        return real_listed(product)

    monkeypatch.setattr(order_services, "refund_create", refund_create)
    monkeypatch.setattr(product_services, "_listed", listed)

    def cancel():
        return order_services.seller_order_cancel(seller_order=seller_order, by=seller.user)

    def activate():
        mine = Product.objects.get(pk=product.pk)
        return product_set_active(product=mine, seller=seller, active=True)

    results = together(cancel, activate)
    connection.close()

    assert not [r for r in results if isinstance(r, Exception)], results
    assert ListingCharge.objects.filter(product=product).count() == 1


# --- What the seller is shown -------------------------------------------------------------


@pytest.mark.django_db
def test_the_commission_shown_is_the_one_charged_in_another_currency(seller):
    from payments.reporting.earnings import commission_terms

    CommissionRuleFactory(percentage_bps=1000)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(commission_bps=500), by=seller.user)
    seller.default_currency = "EUR"  # the seller now sells in euros too
    seller.save()

    line = paid_order([(seller, 10000, 1)]).lines.get()
    shown = commission_terms(seller=seller, currencies=["EUR"])["EUR"]

    assert line.commission_source == "plan" and line.commission_minor == 500  # 5 % charged
    assert shown is not None
    assert shown.percentage_bps == 500, f"shown {shown.percentage_bps} bps, charged 500"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["abc", "99999999999999999999", "-1", ""])
def test_odd_plan_ids_on_the_sellers_page_change_nothing_and_never_500(seller, client, value):
    SellerPlanFactory()
    client.force_login(seller.user)

    shown = client.get(reverse("marketplace:seller_plan"), {"switch": value})
    posted = client.post(reverse("marketplace:seller_plan"), {"plan": value})

    assert shown.status_code in (200, 400)
    assert posted.status_code == 302
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()


@pytest.mark.django_db
def test_a_seller_cannot_choose_a_plan_not_offered(seller, client, api_as):
    hidden = SellerPlanFactory(is_offered=False)
    client.force_login(seller.user)

    client.post(reverse("marketplace:seller_plan"), {"plan": hidden.pk})
    response = api_as(seller.user).post(reverse("api:my-plan"), {"plan": hidden.pk}, format="json")

    assert 400 <= response.status_code < 500
    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()


@pytest.mark.django_db
def test_proration_counts_the_daylight_saving_hour(settings, seller):
    """New York's November 2026 has 30 days and one hour (clocks go back on the 1st):
    a change at noon local on the 16th leaves 14.5 days of a 30-day-and-an-hour month."""
    settings.TIME_ZONE = "America/New_York"
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    a = SellerPlanFactory(monthly_fee_minor=0)
    b = SellerPlanFactory(monthly_fee_minor=2900)
    SellerPlanChoice.objects.create(
        seller=seller, plan=a, started_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    at = datetime(2026, 11, 16, 12, tzinfo=zone)

    seller_plan_change(seller=seller, plan=b, by=seller.user, at=at)

    month = 30 * 86_400 + 3600
    left = int((datetime(2026, 12, 1, tzinfo=zone) - at).total_seconds())
    assert left == 14 * 86_400 + 12 * 3600
    charge = SellerPlanCharge.objects.get(plan=b)
    assert charge.amount_minor == _half_up(Fraction(2900 * left, month)) == 1400  # 1399.72


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_plan_fee_racing_a_payout_being_sent_never_overpays(seller):
    """A payout of 90.00 made, then the month's fee and the sending at once: either the
    payout goes first (sent in full, the fee a debt) or the fee does (the payout no longer
    fits and is cancelled); never 90.00 sent with the fee also taken from it unnoticed."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run_payouts(sellers=[seller])
    payout = Payout.objects.get()
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(monthly_fee_minor=2900))

    results = together(seller_plans_bill, lambda: payout_send(payout=payout))

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    fee = SellerPlanCharge.objects.get().amount_minor
    available = seller_balance(seller=seller, currency="USD").available
    sent = 0 if payout.status == "cancelled" else payout.amount_minor
    assert sent in (0, 9000), payout.status
    assert sent + available == 9000 - fee  # what was sent plus what is left (or owed)
    assert ledger_check().problems == []
