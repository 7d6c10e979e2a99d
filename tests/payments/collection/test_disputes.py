import pytest

from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.disputes import dispute_closed
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import Dispute, LedgerAccount, LocalEvent
from payments.payouts.holds import seller_order_hold_release
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from payments.tasks import local_event_deliver
from tests.factories import CommissionRuleFactory, ProductFactory, ServiceFeeFactory
from tests.payments.collection.fee_helpers import balance, card_paid, dispute

pytestmark = pytest.mark.django_db

local = LocalProcessor()


@pytest.fixture
def disputed(run, customer, seller, other_seller):
    """An order paid with the card that is disputed a moment later: 2000 + 1000, 10% rule."""
    CommissionRuleFactory(percentage_bps=1000)
    a = ProductFactory(seller=seller, price_minor=2000, stock=1)
    b = ProductFactory(seller=other_seller, price_minor=1000, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(a.pk, 1), CartItem(b.pk, 1)])
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_DISPUTED)
    return Dispute.objects.get()


def held(seller):
    account = LedgerAccount.objects.filter(seller=seller, kind="disputed").first()
    return -account.balance_minor if account else 0


def test_a_dispute_holds_each_seller_share_of_it(disputed, seller, other_seller):
    assert (disputed.status, disputed.amount_minor) == (Dispute.Status.OPEN, 3000)
    assert (seller_balance(seller=seller, currency="USD").pending, held(seller)) == (0, 1800)
    assert (seller_balance(seller=other_seller, currency="USD").pending, held(other_seller)) == (
        0,
        900,
    )
    assert platform_balance(currency="USD").cash_at_processor < 0  # withdrawn by the processor
    assert ledger_check().ok


def test_a_won_dispute_returns_the_shares_to_pending_while_the_hold_runs(run, disputed, seller):
    """Finding 6: the share went straight to available and was paid out on day 1."""
    run(local.dispute_close, dispute_id=disputed.processor_dispute_id, won=True)

    disputed.refresh_from_db()
    assert disputed.status == Dispute.Status.WON
    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available, held(seller)) == (1800, 0, 0)
    assert platform_balance(currency="USD").commission_earned == 300
    assert ledger_check().ok

    # The hold then releases it like any sale.
    run(seller_order_hold_release, seller_order=disputed.order.seller_orders.get(seller=seller))
    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available) == (0, 1800)
    assert ledger_check().ok


def test_a_won_dispute_after_the_release_returns_the_share_to_available(run, disputed, seller):
    run(seller_order_hold_release, seller_order=disputed.order.seller_orders.get(seller=seller))

    run(local.dispute_close, dispute_id=disputed.processor_dispute_id, won=True)

    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available, held(seller)) == (0, 1800, 0)
    assert ledger_check().ok


def test_a_lost_dispute_debits_the_sellers_and_the_commission(run, disputed, seller, other_seller):
    run(local.dispute_close, dispute_id=disputed.processor_dispute_id, won=False)

    assert held(seller) == 0 and held(other_seller) == 0
    assert seller_balance(seller=seller, currency="USD").total_owed == 0
    assert platform_balance(currency="USD").commission_earned == 0
    assert ledger_check().ok


def test_a_dispute_after_the_release_holds_from_available(run, customer, seller):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=1000, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = run(payment_start, order=order)
    with pytest.MonkeyPatch.context() as patch:
        # Deliver the success now and the dispute later, after the hold release.
        patch.setattr("payments.processors.local.LocalProcessor._emit", _emit_without_dispute)
        run(
            local.payment_confirm,
            payment_id=attempt.processor_payment_id,
            card_number=CARD_DISPUTED,
        )
    run(seller_order_hold_release, seller_order=order.seller_orders.get())
    dispute_event = LocalEvent.objects.get(type="charge.dispute.created")

    run(local_event_deliver, dispute_event.id)

    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.available, held(seller)) == (0, 900)
    assert ledger_check().ok


def test_repeated_dispute_events_change_nothing(run, disputed):
    event = LocalEvent.objects.get(type="charge.dispute.created")

    run(local_event_deliver, event.id)

    assert Dispute.objects.count() == 1
    assert ledger_check().ok


_original_emit = LocalProcessor._emit


def _emit_without_dispute(self, type_, data, account=""):
    if type_ == "charge.dispute.created":
        return LocalEvent.objects.create(id="evt_local_dispute_later", type=type_, data=dict(data))
    return _original_emit(self, type_, data, account)


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
