import pytest

from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import Dispute, LedgerAccount, LocalEvent
from payments.payouts.holds import seller_order_hold_release
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from payments.tasks import local_event_deliver
from tests.factories import CommissionRuleFactory, ProductFactory

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
