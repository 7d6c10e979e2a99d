"""The customer service fee's arithmetic, in JPY, USD and KWD (no database): the fee
on an order (percentage half-up + fixed, below the lines' total) and its pro-rata
refunds (cumulative: all lines refunded gives back exactly the fee, never more, and
at each step at most one minor unit above the exact pro rata)."""

from datetime import timedelta
from fractions import Fraction

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.kernel.money import percentage
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.captures import order_payment_captured, order_processor_fee_recorded
from payments.collection.refunds import (
    refund_create,
    refund_mark_failed,
    refund_mark_succeeded,
    refund_preview,
)
from payments.models import Dispute, LedgerAccount, LedgerEntry, Refund, ServiceFee
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from payments.revenue.service_fees import service_fee_amount, service_fee_refund_part
from tests.factories import (
    CommissionRuleFactory,
    ProductFactory,
    SellerFactory,
    ServiceFeeFactory,
    UserFactory,
)
from tests.money_helpers import pay_by_card

CURRENCIES = st.sampled_from(["JPY", "USD", "KWD"])


def fee_of(currency, bps, fixed):
    return ServiceFee(currency=currency, percentage_bps=bps, fixed_fee_minor=fixed)


def service_fees_held(currency):
    """What the platform's service_fees account holds (earned), as a positive amount."""
    account = LedgerAccount.objects.filter(
        seller__isnull=True, kind="service_fees", currency=currency
    ).first()
    if account is None:
        return 0
    total = LedgerEntry.objects.filter(account=account).values_list("amount_minor", flat=True)
    return -sum(total)


def order_in(currency, customer, prices=(10_000, 5_000), capture=True):
    sellers = [SellerFactory(default_currency=currency) for _ in prices]
    products = [
        ProductFactory(seller=seller, price_minor=price, stock=3, currency=currency)
        for seller, price in zip(sellers, prices, strict=True)
    ]
    order = place_order(customer=customer, cart_items=[CartItem(p.pk, 1) for p in products])
    if capture:
        order_payment_captured(order=order)
        order.refresh_from_db()
    return order


def test_a_fee_is_percentage_half_up_plus_fixed():
    assert service_fee_amount(fee_of("USD", 250, 30), 1000) == 55  # 25 + 30
    assert service_fee_amount(fee_of("USD", 250, 0), 1010) == 25  # 25.25 -> 25
    assert service_fee_amount(fee_of("USD", 250, 0), 1020) == 26  # 25.5 -> 26 (half-up)
    assert service_fee_amount(fee_of("JPY", 0, 100), 5000) == 100
    assert service_fee_amount(fee_of("KWD", 100, 5), 12_345) == 128  # 123.45 -> 123, + 5


def test_a_fee_never_reaches_the_lines_total():
    assert service_fee_amount(fee_of("USD", 0, 500), 300) == 299
    assert service_fee_amount(fee_of("USD", 10_000, 0), 1) == 0
    assert service_fee_amount(None, 1000) == 0


@given(
    currency=CURRENCIES,
    bps=st.integers(0, 10_000),
    fixed=st.integers(0, 10**7),
    lines=st.integers(1, 10**10),
)
def test_the_fee_is_the_rule_and_below_the_lines(currency, bps, fixed, lines):
    amount = service_fee_amount(fee_of(currency, bps, fixed), lines)
    assert isinstance(amount, int)
    assert 0 <= amount < lines
    assert amount == min(percentage(lines, bps) + fixed, lines - 1)


@st.composite
def refund_sequences(draw):
    """A lines' gross, a fee below it, and a sequence of line refunds adding up to at most
    the gross (each above zero)."""
    gross = draw(st.integers(1, 10**9))
    fee = draw(st.integers(0, gross - 1)) if gross > 1 else 0
    steps = []
    left = gross
    for _ in range(draw(st.integers(1, 12))):
        if left == 0:
            break
        steps.append(draw(st.integers(1, left)))
        left -= steps[-1]
    if draw(st.booleans()) and left:
        steps.append(left)  # refund everything that is left
    return gross, fee, steps


@settings(max_examples=300)
@given(refund_sequences(), CURRENCIES)
def test_partial_refunds_give_back_the_fee_pro_rata_and_exactly_in_full(case, currency):
    gross, fee, steps = case
    refunded_lines = refunded_fee = 0
    for step in steps:
        part = service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=refunded_fee,
            lines_gross_minor=gross,
            lines_refunded_after_minor=refunded_lines + step,
        )
        assert part >= 0
        refunded_lines += step
        refunded_fee += part
        assert refunded_fee <= fee  # never more than the fee
        assert refunded_fee <= Fraction(fee * refunded_lines, gross) + 1  # pro rata + 1
    if refunded_lines == gross:
        assert refunded_fee == fee  # every line refunded: the whole fee, exactly


@settings(max_examples=200)
@given(refund_sequences(), st.data())
def test_a_failed_refund_puts_its_fee_back_and_the_rest_still_ends_exact(case, data):
    """A refund that fails releases its lines and its fee part; refunding every line
    afterwards still gives back exactly the fee."""
    gross, fee, steps = case
    live = []  # (lines, fee part) of refunds that did not fail
    for step in steps:
        lines_now = sum(lines for lines, _ in live)
        fee_now = sum(part for _, part in live)
        part = service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=fee_now,
            lines_gross_minor=gross,
            lines_refunded_after_minor=lines_now + step,
        )
        live.append((step, part))
        if data.draw(st.booleans()):
            live.pop(data.draw(st.integers(0, len(live) - 1)))  # that refund failed
        assert 0 <= sum(part for _, part in live) <= fee
    lines_now = sum(lines for lines, _ in live)
    fee_now = sum(part for _, part in live)
    if lines_now < gross:
        fee_now += service_fee_refund_part(
            fee_minor=fee,
            fee_refunded_minor=fee_now,
            lines_gross_minor=gross,
            lines_refunded_after_minor=gross,
        )
    assert fee_now == fee


@pytest.mark.django_db
def test_place_order_adds_the_fee_of_the_orders_currency_only(customer):
    CommissionRuleFactory(percentage_bps=1000)
    usd = ServiceFeeFactory(currency="USD", percentage_bps=250, fixed_fee_minor=30)
    ServiceFeeFactory(currency="EUR", percentage_bps=900)
    order = order_in("USD", customer, capture=False)
    assert (order.service_fee_minor, order.service_fee_id) == (375 + 30, usd.pk)
    assert order.total_minor == 15_000 + 405
    assert order.commission_minor == 1_500  # the commission is on the lines only
    jpy = order_in("JPY", customer, prices=(1_000,), capture=False)
    assert (jpy.service_fee_minor, jpy.service_fee_id, jpy.total_minor) == (0, None, 1_000)


@pytest.mark.django_db
def test_the_latest_started_active_fee_applies(customer):
    now = timezone.now()
    ServiceFeeFactory(currency="USD", percentage_bps=100, active_from=now - timedelta(days=9))
    ServiceFeeFactory(currency="USD", percentage_bps=200, active_from=now - timedelta(days=3))
    ServiceFeeFactory(currency="USD", percentage_bps=900, active_from=now + timedelta(days=1))
    ServiceFeeFactory(
        currency="USD",
        percentage_bps=700,
        active_from=now - timedelta(days=2),
        active_until=now - timedelta(days=1),
    )
    assert order_in("USD", customer, capture=False).service_fee_minor == 300


@pytest.mark.django_db
def test_the_platform_keeps_the_fee_in_the_ledger(customer):
    ServiceFeeFactory(currency="USD", percentage_bps=0, fixed_fee_minor=99)
    order = order_in("USD", customer)
    entries = LedgerEntry.objects.filter(transaction__idempotency_key=f"payment:{order.pk}")
    by_kind = {(e.account.kind, e.order_line_id is None): e.amount_minor for e in entries}
    assert by_kind[("processor", True)] == order.total_minor == 15_099
    assert by_kind[("service_fees", True)] == -99
    assert service_fees_held("USD") == 99
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "prices", "bps", "fixed"),
    [
        ("JPY", (3_000, 1_999), 350, 0),
        ("USD", (10_000, 5_001), 250, 30),
        ("KWD", (12_345, 777), 125, 5),
    ],
)
def test_refunds_give_back_the_fee_pro_rata_then_exactly_in_full(
    customer, currency, prices, bps, fixed
):
    ServiceFeeFactory(currency=currency, percentage_bps=bps, fixed_fee_minor=fixed)
    CommissionRuleFactory(percentage_bps=1000)
    order = order_in(currency, customer, prices=prices)
    fee, gross = order.service_fee_minor, sum(prices)
    assert fee > 0
    first, _second = order.lines.order_by("pk")
    partial = refund_create(order=order, order_line=first, amount_minor=first.gross_minor // 3)
    refund_mark_succeeded(refund=partial)
    expected = (2 * fee * (first.gross_minor // 3) + gross) // (2 * gross)  # half-up
    assert partial.service_fee_minor == expected
    assert partial.amount_minor == first.gross_minor // 3 + expected
    rest = refund_create(order=order)  # everything left
    refund_mark_succeeded(refund=rest)
    order.refresh_from_db()
    assert order.service_fee_refunded_minor == fee
    assert order.refunded_minor == order.total_minor
    assert order.status == "refunded"
    assert partial.service_fee_minor + rest.service_fee_minor == fee
    assert service_fees_held(currency) == 0
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
def test_a_failed_refund_and_a_reversed_one_put_the_fee_part_back(customer):
    ServiceFeeFactory(currency="USD", percentage_bps=1000)
    order = order_in("USD", customer)  # 15 000 + 1 500
    first, _ = order.lines.order_by("pk")
    failed = refund_create(order=order, order_line=first)
    assert failed.service_fee_minor == 1_000
    refund_mark_failed(refund=failed)
    order.refresh_from_db()
    assert (order.refunded_minor, order.service_fee_refunded_minor) == (0, 0)
    reversed_ = refund_create(order=order, order_line=first)
    refund_mark_succeeded(refund=reversed_)
    assert service_fees_held("USD") == 500
    refund_mark_failed(refund=reversed_)  # the bank sent it back
    order.refresh_from_db()
    assert (order.refunded_minor, order.service_fee_refunded_minor) == (0, 0)
    assert service_fees_held("USD") == 1_500
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
def test_the_refund_preview_shows_the_fee_part(customer):
    ServiceFeeFactory(currency="USD", percentage_bps=1000)
    order = order_in("USD", customer)
    first, _ = order.lines.order_by("pk")
    preview = refund_preview(order=order, line_amounts={first.pk: 10_000})
    assert (preview.lines_minor, preview.service_fee_minor, preview.amount_minor) == (
        10_000,
        1_000,
        11_000,
    )


@pytest.mark.django_db
def test_sellers_never_bear_the_processor_fee_on_the_service_fee(customer, settings):
    settings.PAYMENTS_PROCESSOR_FEE_PAYER = "sellers"
    CommissionRuleFactory(percentage_bps=0)
    ServiceFeeFactory(currency="USD", percentage_bps=0, fixed_fee_minor=5_000)
    order = order_in("USD", customer, prices=(10_000, 5_000))  # fee 5 000, total 20 000
    order_processor_fee_recorded(order=order, fee_minor=400)
    entries = LedgerEntry.objects.filter(transaction__idempotency_key=f"fee:{order.pk}")
    sellers = sum(e.amount_minor for e in entries if e.account.seller_id)
    platform = sum(e.amount_minor for e in entries if e.account.kind == "processor_fees")
    assert (sellers, platform) == (300, 100)  # 15 000 : 5 000 of the 400
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
@pytest.mark.parametrize("won", [False, True])
def test_a_dispute_of_the_whole_payment_holds_the_fee_and_a_loss_is_the_platforms(
    run, customer, won
):
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency="USD", percentage_bps=500)
    order = order_in("USD", customer, capture=False)  # 15 000 + 750
    order = pay_by_card(run, order, card=CARD_DISPUTED)
    dispute = Dispute.objects.get()
    assert (dispute.amount_minor, dispute.service_fee_minor) == (15_750, 750)
    assert ledger_check().ok, ledger_check().problems
    run(LocalProcessor().dispute_close, dispute_id=dispute.processor_dispute_id, won=won)
    dispute.refresh_from_db()
    assert dispute.status == ("won" if won else "lost")
    assert service_fees_held("USD") == (750 if won else 0)
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
def test_a_refund_through_the_local_processor_sends_the_fee_part(run, customer):
    from payments.collection.refunds import refund_submit
    from payments.models import LocalRefund

    ServiceFeeFactory(currency="USD", percentage_bps=1000)
    order = pay_by_card(run, order_in("USD", customer, capture=False))
    first, _ = order.lines.order_by("pk")
    refund = run(refund_create, order=order, order_line=first)
    run(refund_submit, refund=refund)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert LocalRefund.objects.get().amount_minor == 11_000
    assert ledger_check().ok, ledger_check().problems


@pytest.mark.django_db
def test_the_fee_is_never_as_much_as_the_lines_at_one_and_two_minor_units():
    fee = ServiceFeeFactory.build(currency="JPY", percentage_bps=10_000, fixed_fee_minor=500)
    assert service_fee_amount(fee, 1) == 0
    assert service_fee_amount(fee, 2) == 1
    assert service_fee_amount(fee, 0) == 0


@pytest.mark.django_db
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


@pytest.mark.django_db
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
