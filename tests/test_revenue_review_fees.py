"""Second reading of issue 19's customer service fee, volume tiers and commission
precedence: each test is a sequence or a boundary a customer or an operator can reach.
Tests marked xfail(strict) show a bug today; the others prove the code holds."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.captures import order_payment_captured
from payments.collection.checkout import payment_start, payment_succeeded
from payments.collection.disputes import dispute_closed, dispute_opened
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.models import CommissionRule, Dispute, LedgerAccount, Refund, VolumeTier
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor
from payments.revenue.commission import commission_rule_save
from payments.revenue.service_fees import service_fee_amount, service_fee_refund_part
from payments.revenue.volume_tiers import volume_tiers_save
from tests.factories import (
    CommissionRuleFactory,
    ProductFactory,
    SellerFactory,
    ServiceFeeFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def balance(kind, currency="USD"):
    """The platform account's raw balance (earned money is negative)."""
    account = (
        LedgerAccount.objects.filter(seller=None, kind=kind, currency=currency)
        .with_balance()
        .first()
    )
    return account.balance if account else 0


def card_paid(prices, currency="USD"):
    """An order of one product per price (each its own seller), paid by the local card."""
    cart = []
    for price in prices:
        seller = SellerFactory(default_currency=currency)
        product = ProductFactory(seller=seller, price_minor=price, stock=1, currency=currency)
        cart.append(CartItem(product.pk, 1))
    order = place_order(customer=UserFactory(), cart_items=cart)
    attempt = payment_start(order=order)
    LocalProcessor().payment_confirm(
        payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS
    )
    payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order, attempt.processor_payment_id


def dispute(payment_id, amount, name="dp_review"):
    return dispute_opened(
        processor_name="local",
        processor_dispute_id=name,
        payment_id=payment_id,
        amount_minor=amount,
    )


# --- Refunds and disputes with a service fee -------------------------------------------


@pytest.mark.parametrize("loss_first", [False, True])
def test_pending_refund_then_lost_whole_dispute_takes_the_fee_from_service_fees_once(
    loss_first,
):
    """Lines: the seller loses once, the 4000 repaid twice is the platform's ``losses``
    (tests/payments/test_money_safety.py). The fee must follow the same rule: the
    platform loses its 500 fee once from ``service_fees``, and the 200 of the fee repaid
    twice is a loss, not a second debit of service-fee revenue."""
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([10_000])
    assert (order.service_fee_minor, order.total_minor) == (500, 10_500)
    pending = refund_create(order=order, amount_minor=4_000)
    assert pending.service_fee_minor == 200
    dispute(payment_id, order.total_minor)
    if loss_first:  # the refund's success event arrives after the loss
        dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
        refund_mark_succeeded(refund=pending)
    else:
        refund_mark_succeeded(refund=pending)
        dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
    assert ledger_check().ok, ledger_check().problems
    # The customer paid 10500 and got back 4200 + 10500: 4200 repaid twice.
    assert balance("losses") == 4_200
    assert balance("service_fees") == 0  # the 500 fee earned, then lost once


def test_pending_refund_that_fails_then_lost_whole_dispute_loses_the_fee_once():
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([10_000])
    pending = refund_create(order=order, amount_minor=4_000)
    held = dispute(payment_id, order.total_minor)
    assert held.service_fee_minor == 500
    refund_mark_failed(refund=pending)
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
    assert balance("service_fees") == 0
    assert balance("losses") == 0
    order.refresh_from_db()
    assert order.service_fee_refunded_minor == 0
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.parametrize("won", [True, False])
def test_partial_refund_then_partial_dispute_splits_what_is_left_of_the_fee(won):
    """Fee 300 on 6000 of lines; 2000 refunded (fee part 100); a dispute of 3100 of the
    8200 left holds the lines and the fee left (200) in proportion; a loss takes that
    part of the fee from the platform only; the books stay proved."""
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([2_000, 4_000])
    first = order.lines.order_by("pk").first()
    refund = refund_create(order=order, order_line=first)
    assert refund.service_fee_minor == 100
    refund_mark_succeeded(refund=refund)
    held = dispute(payment_id, 2_100)
    assert 0 < held.service_fee_minor <= 200
    assert held.service_fee_minor + sum(held.lines.values_list("amount_minor", flat=True)) == 2_100
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=won)
    earned = -balance("service_fees")
    assert earned == 300 - 100 - (0 if won else held.service_fee_minor)
    assert ledger_check().ok, ledger_check().problems


def test_a_dispute_after_every_line_was_refunded_holds_no_fee():
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([1_000])
    refund_mark_succeeded(refund=refund_create(order=order))
    held = dispute(payment_id, order.total_minor)
    assert held.service_fee_minor == 0
    assert balance("service_fees") == 0
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
    assert balance("service_fees") == 0
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_refund_reversed_then_refunded_again_gives_back_the_fee_exactly_once(currency):
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency=currency, percentage_bps=333, fixed_fee_minor=1)
    order, _ = card_paid([1_001, 2_002], currency=currency)
    fee = order.service_fee_minor
    first, second = order.lines.order_by("pk")
    one = refund_create(order=order, order_line=first)
    refund_mark_succeeded(refund=one)
    refund_mark_failed(refund=one)  # the bank sent it back
    two = refund_create(order=order, order_line=second)
    three = refund_create(order=order, order_line=first)
    for refund in (two, three):
        refund_mark_succeeded(refund=refund)
    order.refresh_from_db()
    assert two.service_fee_minor + three.service_fee_minor == fee
    assert order.service_fee_refunded_minor == fee
    assert order.refunded_minor == order.total_minor
    assert order.status == Order.Status.REFUNDED
    assert balance("service_fees", currency) == 0
    assert ledger_check().ok, ledger_check().problems


# --- Boundaries -------------------------------------------------------------------------


def test_the_fee_is_never_as_much_as_the_lines_at_one_and_two_minor_units():
    fee = ServiceFeeFactory.build(currency="JPY", percentage_bps=10_000, fixed_fee_minor=500)
    assert service_fee_amount(fee, 1) == 0
    assert service_fee_amount(fee, 2) == 1
    assert service_fee_amount(fee, 0) == 0


def test_a_one_yen_order_takes_no_fee_and_a_two_yen_order_one():
    ServiceFeeFactory(currency="JPY", percentage_bps=0, fixed_fee_minor=500)
    seller = SellerFactory(default_currency="JPY")
    one = ProductFactory(seller=seller, price_minor=1, stock=5, currency="JPY")
    order = place_order(customer=UserFactory(), cart_items=[CartItem(one.pk, 1)])
    assert (order.service_fee_minor, order.service_fee_id, order.total_minor) == (0, None, 1)
    order = place_order(customer=UserFactory(), cart_items=[CartItem(one.pk, 2)])
    assert (order.service_fee_minor, order.total_minor) == (1, 3)
    order_payment_captured(order=order)
    order.refresh_from_db()
    refund = refund_create(order=order, amount_minor=1)
    assert refund.service_fee_minor == 1  # 0.5 rounds half-up
    assert refund_create(order=order, amount_minor=1).service_fee_minor == 0
    order.refresh_from_db()
    assert order.refunded_minor == order.total_minor == 3
    assert ledger_check().ok, ledger_check().problems


def test_the_fee_part_never_goes_above_the_fee_even_with_counters_past_the_lines():
    assert (
        service_fee_refund_part(
            fee_minor=7, fee_refunded_minor=0, lines_gross_minor=10, lines_refunded_after_minor=11
        )
        == 7
    )
    assert (
        service_fee_refund_part(
            fee_minor=7, fee_refunded_minor=7, lines_gross_minor=10, lines_refunded_after_minor=5
        )
        == 0
    )


# --- Volume tiers and commission precedence --------------------------------------------


def test_a_rule_with_tiers_cannot_silently_change_its_currency():
    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 100_000, 1000), (100_000, None, 500)])
    rule.currency = "JPY"
    with pytest.raises(ValidationError):
        commission_rule_save(rule=rule)
    assert CommissionRule.objects.get(pk=rule.pk).currency == "USD"


def test_tiers_on_a_negotiated_rule_are_refused_or_applied():
    seller = SellerFactory(default_currency="USD")
    rule = CommissionRuleFactory(
        scope=CommissionRule.Scope.SELLER, seller=seller, currency="USD", percentage_bps=1000
    )
    try:
        volume_tiers_save(rule=rule, tiers=[(0, None, 200)])
    except ValidationError:
        assert not VolumeTier.objects.exists()
        return
    product = ProductFactory(seller=seller, price_minor=10_000, stock=1, currency="USD")
    order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
    assert order.lines.get().rule_percentage_bps == 200


def test_tiers_saved_wrong_change_nothing_and_a_change_is_audited():
    rule = CommissionRuleFactory(currency="KWD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 1_000, 900), (1_000, None, 800)])
    for bad in (
        [(0, 1_000, 900), (999, None, 800)],  # overlap
        [(0, 1_000, 900), (1_001, None, 800)],  # gap
        [(1, None, 900)],  # not from 0
        [(0, 1_000, 900)],  # a top on the last
        [(0, None, 900), (1_000, None, 800)],  # no top before the last
        [(0, None, 10_001)],
        [(0, None, -1)],
        [(0.5, None, 900)],
        [(0, None, True)],
    ):
        with pytest.raises(ValidationError):
            volume_tiers_save(rule=rule, tiers=bad)
    assert list(rule.tiers.order_by("from_minor").values_list("up_to_minor", flat=True)) == [
        1_000,
        None,
    ]


def test_a_plan_without_commission_leaves_the_tier_and_a_seller_rule_beats_the_plan():
    from payments.models import SellerPlan, SellerPlanChoice

    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, None, 700)])
    plain, cheap = (SellerFactory(default_currency="USD") for _ in range(2))
    no_rate = SellerPlan.objects.create(name="Basic", currency="USD", monthly_fee_minor=0)
    low = SellerPlan.objects.create(
        name="Pro", currency="USD", monthly_fee_minor=2_900, commission_bps=500
    )
    from datetime import UTC, datetime

    since = datetime(2020, 1, 1, tzinfo=UTC)
    SellerPlanChoice.objects.create(seller=plain, plan=no_rate, started_at=since)
    SellerPlanChoice.objects.create(seller=cheap, plan=low, started_at=since)
    CommissionRuleFactory(
        scope=CommissionRule.Scope.SELLER, seller=cheap, currency="", percentage_bps=1500
    )
    products = [
        ProductFactory(seller=s, price_minor=1_000, stock=1, currency="USD") for s in (plain, cheap)
    ]
    order = place_order(customer=UserFactory(), cart_items=[CartItem(p.pk, 1) for p in products])
    by_seller = {
        line.product.seller_id: (line.commission_source, line.rule_percentage_bps)
        for line in order.lines.select_related("product")
    }
    assert by_seller == {plain.pk: ("tier", 700), cheap.pk: ("rule", 1500)}


# --- The operators' API -----------------------------------------------------------------


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


@pytest.mark.parametrize(
    "body",
    [
        {"tiers": None},
        {"tiers": "x"},
        {"tiers": [None]},
        {"tiers": [{"percentage_bps": 5}]},
        {"tiers": [{"from_minor": 0, "up_to_minor": 0, "percentage_bps": 5}]},
        {},
    ],
)
def test_bad_tier_bodies_are_a_400(api_as, operator, body):
    rule = CommissionRuleFactory(currency="USD")
    response = api_as(operator).put(reverse("api:rule-tiers", args=[rule.pk]), body, format="json")
    assert response.status_code == 400, response.content
    assert not VolumeTier.objects.exists()


def test_the_refund_counts_its_fee_part_in_what_the_order_says_was_refunded():
    ServiceFeeFactory(currency="KWD", percentage_bps=1_000, fixed_fee_minor=1)
    order, _ = card_paid([1_234, 4_321], currency="KWD")
    refund = refund_create(order=order, amount_minor=999)
    order.refresh_from_db()
    assert refund.amount_minor == 999 + refund.service_fee_minor
    assert order.refunded_minor == refund.amount_minor
    assert Refund.objects.get().service_fee_minor == order.service_fee_refunded_minor
    assert not Dispute.objects.exists()


# --- PostgreSQL: pairs at once ----------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refund_and_a_whole_dispute_at_once_then_the_refund_fails_books_the_fee_once():
    """The refund takes the order's lock first; the dispute waits, then holds every line
    and the whole fee (the pending refund does not count); the refund fails; the loss
    takes the fee once from the platform."""
    from tests.concurrency import race

    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([3_000, 7_000])
    outcome = race(
        lambda: refund_create(order=order, amount_minor=5_000),
        lambda: dispute(payment_id, 10_500),
    )
    assert not outcome.get("error"), outcome
    held = Dispute.objects.get()
    assert held.service_fee_minor == 500
    refund_mark_failed(refund=Refund.objects.get())
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
    assert balance("service_fees") == 0
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("currency", ["JPY", "KWD"])
def test_a_refund_failing_while_another_is_created_keeps_the_fee_counters_true(currency):
    """A refund of line 2 fails while a refund of line 1 is created: both take the
    order's lock, so the new refund's fee part is read after the release (or before it,
    then the release subtracts exactly the failed part); refunding what is left then
    gives back exactly the fee."""
    from tests.payments.test_concurrency_money import run_together

    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency=currency, percentage_bps=777, fixed_fee_minor=3)
    order, _ = card_paid([1_003, 2_009], currency=currency)
    fee = order.service_fee_minor
    first, second = order.lines.order_by("pk")
    failing = refund_create(order=order, order_line=second)
    results = run_together(
        2,
        lambda: refund_create(order=order, order_line=first),
        lambda: refund_mark_failed(refund=failing),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    order.refresh_from_db()
    alive = Refund.objects.exclude(status=Refund.Status.FAILED)
    assert order.service_fee_refunded_minor == sum(r.service_fee_minor for r in alive)
    rest = refund_create(order=order, order_line=second)
    for refund in Refund.objects.filter(status=Refund.Status.PENDING):
        refund_mark_succeeded(refund=refund)
    order.refresh_from_db()
    assert rest.service_fee_minor >= 0
    assert order.service_fee_refunded_minor == fee
    assert order.refunded_minor == order.total_minor
    assert balance("service_fees", currency) == 0
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.parametrize("outcomes", [(False, False), (True, False), (False, True)])
def test_two_disputes_of_one_payment_never_hold_more_than_the_fee(outcomes):
    """A dispute of 100.00 of a 105.00 payment holds the lines and the fee in
    proportion; a second one of the whole payment holds only what is left; whatever
    each outcome, the fee held and lost is at most the fee and the books are proved."""
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    _, payment_id = card_paid([4_000, 6_000])
    first = dispute(payment_id, 10_000, name="dp_a")
    second = dispute(payment_id, 10_500, name="dp_b")
    assert first.service_fee_minor + second.service_fee_minor <= 500
    for name, won in zip(("dp_a", "dp_b"), outcomes, strict=True):
        dispute_closed(processor_name="local", processor_dispute_id=name, won=won)
    lost = sum(d.service_fee_minor for d in Dispute.objects.filter(status=Dispute.Status.LOST))
    assert -balance("service_fees") == 500 - lost >= 0
    assert ledger_check().ok, ledger_check().problems


def test_pending_refund_then_won_whole_dispute_gives_back_the_fee_part_once():
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([10_000])
    pending = refund_create(order=order, amount_minor=4_000)
    dispute(payment_id, order.total_minor)
    refund_mark_succeeded(refund=pending)
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=True)
    assert -balance("service_fees") == 500 - 200
    assert balance("losses") == 0
    assert ledger_check().ok, ledger_check().problems


# --- The admin: bad input is a form error, nothing saved ----------------------------------


ADMIN_FEE = {
    "name": "Fee",
    "currency": "USD",
    "percentage": "2.5",
    "fixed_fee": "",
    "active_from": "2030-01-01T00:00:00",
    "active_until": "",
    "change_reason": "Launch",
}


@pytest.mark.parametrize(
    "change",
    [
        {"active_until": "2029-01-01T00:00:00"},
        {"percentage": "100.01"},
        {"percentage": "-1"},
        {"percentage": "2.555"},
        {"percentage": "0", "fixed_fee": "0"},
        {"currency": "JPY", "fixed_fee": "0.5"},
        {"currency": "KWD", "fixed_fee": "1.2345"},
        {"fixed_fee": "-1"},
        {"fixed_fee": "abc"},
        {"currency": "XXX"},
        {"change_reason": ""},
    ],
)
def test_a_bad_service_fee_in_the_admin_is_a_form_error(operator_client, change):
    from payments.models import ServiceFee

    response = operator_client.post(
        reverse("admin:payments_servicefee_add"), {**ADMIN_FEE, **change}
    )
    assert response.status_code == 200, response.status_code  # the form again, not a 500
    assert not ServiceFee.objects.exists()


def test_a_good_service_fee_in_the_admin_is_saved_in_minor_units(operator_client):
    from payments.models import ServiceFee

    response = operator_client.post(
        reverse("admin:payments_servicefee_add"),
        {**ADMIN_FEE, "currency": "KWD", "fixed_fee": "1.234"},
    )
    assert response.status_code == 302, response.content[:2000]
    fee = ServiceFee.objects.get()
    assert (fee.percentage_bps, fee.fixed_fee_minor) == (250, 1_234)


def test_trailing_sales_count_paid_lines_of_30_days_in_the_currency_less_refunds():
    from datetime import timedelta

    from django.utils import timezone

    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 5_000, 1000), (5_000, None, 500)])
    seller = SellerFactory(default_currency="USD")
    now = timezone.now()

    def sale(price, *, days_ago=None, currency="USD"):
        product = ProductFactory(seller=seller, price_minor=price, stock=1, currency=currency)
        order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
        if days_ago is not None:
            order_payment_captured(order=order, captured_at=now - timedelta(days=days_ago))
        return order

    sale(9_000, days_ago=31)  # too old
    sale(9_000)  # awaiting payment
    sale(9_000, days_ago=1, currency="EUR")  # another currency
    partly = sale(4_000, days_ago=29)
    refund_create(order=partly, amount_minor=1_000)  # pending: counts as refunded
    sale(2_000, days_ago=0)  # paid a moment ago
    order = sale(1_000)
    line = order.lines.get()
    assert line.tier_sales_minor == 3_000 + 2_000
    assert (line.commission_source, line.rule_percentage_bps) == ("tier", 500)


def test_a_dispute_of_what_is_left_after_a_late_refund_loses_the_fee_once():
    """The processor refunded 42.00 (our success event is late) and the customer
    disputes the 63.00 left: the dispute holds 3.00 of the fee, the refund gives back
    2.00, so a loss takes the fee once in all and the books are proved."""
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order, payment_id = card_paid([10_000])
    pending = refund_create(order=order, amount_minor=4_000)
    held = dispute(payment_id, order.total_minor - pending.amount_minor)
    assert held.service_fee_minor == 300
    refund_mark_succeeded(refund=pending)
    dispute_closed(processor_name="local", processor_dispute_id="dp_review", won=False)
    assert balance("service_fees") == 0
    assert ledger_check().ok, ledger_check().problems
