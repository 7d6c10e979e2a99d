"""Bank debits under concurrency, on PostgreSQL with real connections: a debit settled
twice at once, settled while the expiry runs, and its success and failure events
handled at once (or twice at once). Threads start together behind a barrier; what the
processor says decides, each outcome is recorded once, and nothing fails."""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import partial

import pytest
from django.db import connection
from django.utils import timezone

from marketplace.models import Order, Product
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import (
    local_bank_debit_pay,
    payment_failed,
    payment_start,
    payment_succeeded,
)
from payments.collection.expiry import orders_expire_unpaid
from payments.models import LedgerTransaction, LocalEvent, PaymentAttempt
from payments.processors.local import IBAN_FAILS, IBAN_SUCCEEDS, LocalProcessor, local_debits_settle
from tests.factories import CommissionRuleFactory, ProductFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 3
LATER = timedelta(days=4)


def run_together(*works):
    """Run each of ``works`` in its own thread, released at the same moment; return
    their results or errors, in the order of ``works``."""
    barrier, results = threading.Barrier(len(works)), [None] * len(works)

    def worker(i, work):
        try:
            barrier.wait(10)
            results[i] = work()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, w)) for i, w in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def product(seller):
    CommissionRuleFactory(percentage_bps=1000)
    return ProductFactory(seller=seller, price_minor=3000, stock=100)


def debit(customer, product, iban=IBAN_SUCCEEDS):
    """An order of one unit paid by bank debit: processing (its events not delivered:
    the tests call the services themselves)."""
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = local_bank_debit_pay(attempt=payment_start(order=order), iban=iban)
    assert attempt.status == PaymentAttempt.Status.PROCESSING
    return order, attempt


def captures(order):
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYMENT_CAPTURED, reference_id=str(order.pk)
    ).count()


def succeeded(payment_id):
    return payment_succeeded(payment_id=payment_id, processor_name="local")


def failed(payment_id):
    return payment_failed(payment_id=payment_id, processor_name="local", message="late")


def no_errors(results):
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors


def test_a_debit_settled_twice_at_once_settles_once(customer, product):
    for _ in range(ROUNDS):
        order, attempt = debit(customer, product)
        later = timezone.now() + LATER

        settled = run_together(*[partial(local_debits_settle, now=later)] * 2)
        no_errors(settled)
        recorded = run_together(*[partial(succeeded, attempt.processor_payment_id)] * 2)
        no_errors(recorded)

        assert sum(settled) == 1
        assert (
            LocalEvent.objects.filter(
                type="payment_intent.succeeded", data__id=attempt.processor_payment_id
            ).count()
            == 1
        )
        assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
        assert captures(order) == 1
    assert ledger_check().ok


@pytest.mark.parametrize("event_late", [False, True], ids=["attempt-processing", "event-late"])
def test_a_debit_settled_while_the_expiry_runs_is_paid_never_cancelled(
    customer, product, event_late
):
    for _ in range(ROUNDS):
        order, attempt = debit(customer, product)
        if event_late:
            # The processing event not processed yet: the expiry sees an open attempt.
            PaymentAttempt.objects.filter(pk=attempt.pk).update(
                status=PaymentAttempt.Status.CREATED, payment_method_type=""
            )
        later = timezone.now() + LATER

        results = run_together(
            partial(local_debits_settle, now=later), partial(orders_expire_unpaid, now=later)
        )
        no_errors(results)
        assert Order.objects.get(pk=order.pk).status != Order.Status.CANCELLED
        payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local")

        assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
        assert captures(order) == 1
    assert ledger_check().ok


def test_success_and_failure_events_at_once_follow_what_the_processor_says(customer, product):
    local = LocalProcessor()
    for iban in (IBAN_SUCCEEDS, IBAN_FAILS) * 2:
        order, attempt = debit(customer, product, iban)
        local.debit_settle(payment_id=attempt.processor_payment_id, now=timezone.now() + LATER)
        pid = attempt.processor_payment_id
        stock_before = Product.objects.get(pk=product.pk).stock

        results = run_together(
            partial(succeeded, pid),
            partial(failed, pid),
        )
        no_errors(results)

        order.refresh_from_db()
        attempt.refresh_from_db()
        if iban == IBAN_SUCCEEDS:
            assert (order.status, attempt.status) == ("paid", "succeeded")
            assert captures(order) == 1
            assert Product.objects.get(pk=product.pk).stock == stock_before
        else:
            assert (order.status, attempt.status) == ("cancelled", "failed")
            assert captures(order) == 0
            assert Product.objects.get(pk=product.pk).stock == stock_before + 1
    assert ledger_check().ok


def test_a_failure_handled_twice_at_once_returns_the_stock_once(customer, product):
    local = LocalProcessor()
    for _ in range(ROUNDS):
        order, attempt = debit(customer, product, IBAN_FAILS)
        local.debit_settle(payment_id=attempt.processor_payment_id, now=timezone.now() + LATER)
        pid = attempt.processor_payment_id
        stock_before = Product.objects.get(pk=product.pk).stock

        results = run_together(*[partial(failed, pid)] * 2)
        no_errors(results)

        assert sum(1 for r in results if r is not None and r.order_cancelled) == 1
        assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
        assert Product.objects.get(pk=product.pk).stock == stock_before + 1
