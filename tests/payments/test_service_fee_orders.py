"""The customer service fee end to end: added at checkout for the order's currency only,
kept by the platform in the ledger, refunded pro rata with the lines in JPY, USD and KWD
(a failed or reversed refund puts it back), lost or won with a dispute of the whole
payment, never borne by sellers, and proved by ``check_ledger``."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.captures import order_payment_captured, order_processor_fee_recorded
from payments.collection.refunds import (
    refund_create,
    refund_mark_failed,
    refund_mark_succeeded,
    refund_preview,
)
from payments.models import Dispute, LedgerAccount, LedgerEntry, Refund
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from tests.factories import (
    CommissionRuleFactory,
    ProductFactory,
    SellerFactory,
    ServiceFeeFactory,
)
from tests.money_helpers import pay_by_card

pytestmark = pytest.mark.django_db


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


def test_the_platform_keeps_the_fee_in_the_ledger(customer):
    ServiceFeeFactory(currency="USD", percentage_bps=0, fixed_fee_minor=99)
    order = order_in("USD", customer)
    entries = LedgerEntry.objects.filter(transaction__idempotency_key=f"payment:{order.pk}")
    by_kind = {(e.account.kind, e.order_line_id is None): e.amount_minor for e in entries}
    assert by_kind[("processor", True)] == order.total_minor == 15_099
    assert by_kind[("service_fees", True)] == -99
    assert service_fees_held("USD") == 99
    assert ledger_check().ok, ledger_check().problems


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
