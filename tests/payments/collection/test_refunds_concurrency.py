"""Refunds of one order's lines at once, on PostgreSQL: each reserves its lines and its
part of the service fee under the order's lock, so together they never give back more
than the fee, and refunding every line gives back exactly the fee."""

import pytest

from marketplace.models import Order
from payments.checks import ledger_check
from payments.collection.disputes import dispute_closed
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.models import Dispute, Refund
from tests.concurrency import race
from tests.factories import CommissionRuleFactory, SellerFactory, ServiceFeeFactory
from tests.money_helpers import paid_order
from tests.payments.collection.fee_helpers import balance, card_paid, dispute
from tests.payments.test_concurrency_money import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_two_refunds_of_an_orders_lines_at_once_never_refund_more_than_the_fee(currency):
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency=currency, percentage_bps=333, fixed_fee_minor=7)
    sellers = [SellerFactory(default_currency=currency) for _ in range(2)]
    order = paid_order([(sellers[0], 1001, 1), (sellers[1], 2003, 1)])
    fee = order.service_fee_minor
    first, second = order.lines.order_by("pk")

    def refund(line):
        return lambda: refund_mark_succeeded(refund=refund_create(order=order, order_line=line))

    results = run_together(2, refund(first), refund(second))
    assert not [r for r in results if isinstance(r, Exception)], results
    order = Order.objects.get(pk=order.pk)
    parts = list(Refund.objects.values_list("service_fee_minor", flat=True))
    assert sum(parts) == fee == order.service_fee_refunded_minor
    assert order.refunded_minor == order.total_minor
    assert order.status == Order.Status.REFUNDED
    assert ledger_check().ok, ledger_check().problems


def test_a_refund_waiting_on_another_counts_the_fee_the_first_reserved(seller):
    ServiceFeeFactory(currency="USD", percentage_bps=1000)
    order = paid_order([(seller, 1000, 1), (seller, 1000, 1)])  # fee 200
    first, second = order.lines.order_by("pk")
    outcome = race(
        lambda: refund_create(order=order, order_line=first, amount_minor=999),
        lambda: refund_create(order=order, order_line=second, amount_minor=1000),
    )
    assert not outcome.get("error"), outcome
    parts = sorted(Refund.objects.values_list("service_fee_minor", flat=True))
    assert parts == [100, 100]  # 999 -> 99.9 -> 100; then up to 200 in all, not 2 x 100+
    assert sum(parts) <= 200
    assert Order.objects.get(pk=order.pk).service_fee_refunded_minor == 200


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
