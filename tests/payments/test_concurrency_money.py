"""Money under concurrency, on PostgreSQL with real connections.

Where a test must prove what happens when one request waits for another, the
first runs inside an open transaction while the second starts (see
``tests.concurrency.race``); where any interleaving must be safe, threads
start together behind a barrier.
"""

import threading

import pytest
from django.db import connection

from marketplace.kernel.errors import InvalidRequest, InvalidState, OutOfStock
from marketplace.models import Order, Product, SellerOrder
from marketplace.services.orders import CartItem, place_order, seller_order_cancel
from payments.checks import ledger_check
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.balances import seller_balance
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerTransaction, Refund
from tests.concurrency import race
from tests.factories import CommissionRuleFactory, ProductFactory, UserFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_posting_one_event_twice_at_once_leaves_one_transaction(seller):
    processor = platform_account("processor", "USD")
    pending = seller_account(seller, "pending", "USD")

    def post():
        return ledger_post(
            kind="adjustment",
            idempotency_key="adjust:race",
            reference_type="test",
            reference_id=1,
            postings=[Posting(processor, 500), Posting(pending, -500)],
        )

    first = {}
    outcome = race(lambda: first.setdefault("txn", post()), post)

    assert outcome["value"].pk == first["txn"].pk
    assert LedgerTransaction.objects.count() == 1
    assert seller_balance(seller=seller, currency="USD").pending == 500
    assert ledger_check().ok


def test_two_refunds_of_one_line_at_once_cannot_exceed_it(seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 1)])
    line = order.lines.get()

    outcome = race(
        lambda: refund_create(order=order, order_line=line, amount_minor=700),
        lambda: refund_create(order=order, order_line=line, amount_minor=700),
    )

    assert isinstance(outcome.get("error"), InvalidRequest), outcome
    assert "At most 300" in str(outcome["error"])
    assert list(Refund.objects.values_list("amount_minor", flat=True)) == [700]
    assert Order.objects.get(pk=order.pk).refunded_minor == 700


def test_many_refunds_racing_never_refund_more_than_was_paid(seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 1), (seller, 500, 2)])
    results = run_together(
        8, lambda: refund_mark_succeeded(refund=refund_create(order=order, amount_minor=400))
    )

    refunded = sum(r.amount_minor for r in Refund.objects.all())
    errors = [r for r in results if isinstance(r, Exception)]
    # Five refunds of 400 make the 2000 paid; the other three are refused, nothing else fails.
    assert refunded == 2000, errors
    # Refused as "everything refunded already", or, once the order is fully
    # refunded, as "only a paid order can be refunded": both clear errors.
    assert len(errors) == 3, errors
    assert all(isinstance(e, InvalidRequest | InvalidState) for e in errors), errors
    assert Order.objects.get(pk=order.pk).status == Order.Status.REFUNDED
    assert ledger_check().ok


def test_two_customers_racing_for_the_last_unit(seller):
    product = ProductFactory(seller=seller, stock=1, title="Last One")
    alice, bob = UserFactory(), UserFactory()

    outcome = race(
        lambda: place_order(customer=alice, cart_items=[CartItem(product.pk, 1)]),
        lambda: place_order(customer=bob, cart_items=[CartItem(product.pk, 1)]),
    )

    assert isinstance(outcome.get("error"), OutOfStock), outcome
    assert str(outcome["error"]) == "“Last One” is out of stock."
    assert list(Order.objects.values_list("customer", flat=True)) == [alice.pk]
    assert Product.objects.get(pk=product.pk).stock == 0


def test_eight_customers_racing_for_three_units(seller):
    product = ProductFactory(seller=seller, stock=3)

    results = run_together(
        8, lambda: place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
    )

    assert sum(isinstance(r, Order) for r in results) == 3
    assert sum(isinstance(r, OutOfStock) for r in results) == 5
    assert Order.objects.count() == 3
    assert Product.objects.get(pk=product.pk).stock == 0


def run_together(count, *works):
    """Run ``count`` threads released at the same moment; return their results or errors.

    With one ``work`` every thread runs it; with several, thread i runs ``works[i]``.
    """
    barrier, results, lock = threading.Barrier(count), [], threading.Lock()

    def worker(work):
        try:
            barrier.wait(10)
            result = work()
        except Exception as exc:
            result = exc
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker, args=(works[i % len(works)],)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_a_seller_cancelling_while_a_refund_is_made_does_not_deadlock(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    for _ in range(5):
        order = paid_order([(seller, 1000, 1), (other_seller, 500, 1)])
        mine = order.seller_orders.get(seller=seller)

        results = run_together(
            2,
            lambda order=order, mine=mine: seller_order_cancel(seller_order=mine),
            lambda order=order: refund_create(order=order, amount_minor=100),
        )

        assert not [r for r in results if isinstance(r, Exception)], results
        # Whichever ran first, the cancelled part is refunded in full, once.
        assert SellerOrder.objects.get(pk=mine.pk).refunded_minor == 1000
        refunds = sum(Refund.objects.filter(order=order).values_list("amount_minor", flat=True))
        assert Order.objects.get(pk=order.pk).refunded_minor == refunds
        assert ledger_check().ok


def test_two_payout_runs_at_the_same_moment_pay_each_seller_once(
    seller, other_seller, eager_celery
):
    from payments.models import Payout
    from payments.payouts.holds import seller_order_hold_release
    from payments.payouts.runs import run_payouts

    CommissionRuleFactory(percentage_bps=1000)
    for s in (seller, other_seller):
        enable_payouts(s)
        order = paid_order([(s, 10000, 1)])
        seller_order_hold_release(seller_order=order.seller_orders.get())

    results = run_together(2, lambda: run_payouts())

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(Payout.objects.values_list("seller_id", "amount_minor")) == sorted(
        [(seller.pk, 9000), (other_seller.pk, 9000)]
    )
    assert ledger_check().ok
