"""Delayed-notification payments (bank debits) on the local processor, end to end:
processing for days with nothing posted, then paid (the hold starting at success) or
failed (the order cancelled, its stock back, the customer told once)."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from marketplace.models import Order, Product
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import (
    local_bank_debit_pay,
    payment_failed,
    payment_processing,
    payment_start,
    payment_succeeded,
)
from payments.collection.expiry import orders_expire_unpaid
from payments.ledger.balances import seller_balance
from payments.models import (
    LedgerTransaction,
    LocalEvent,
    LocalPaymentIntent,
    LocalRefund,
    PaymentAttempt,
    Payout,
    WebhookEvent,
)
from payments.payouts.holds import holds_due
from payments.payouts.runs import run_payouts
from payments.processors.base import CardDeclined, InvalidProcessorRequest, PaymentStatus
from payments.processors.local import (
    BANK_DEBIT,
    CARD_DECLINED,
    DEBIT_FAILURE_MESSAGE,
    IBAN_DISPUTED,
    IBAN_FAILS,
    IBAN_SUCCEEDS,
    LocalProcessor,
    local_debits_settle,
)
from payments.tasks import local_debits_settle_task
from tests.factories import CommissionRuleFactory, ProductFactory, UserFactory
from tests.money_helpers import enable_payouts

pytestmark = pytest.mark.django_db

local = LocalProcessor()
DAYS = 3  # PAYMENTS_LOCAL_DEBIT_DAYS's default


@pytest.fixture
def products(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    return (
        ProductFactory(seller=seller, price_minor=2000, stock=5),
        ProductFactory(seller=other_seller, price_minor=1000, stock=5),
    )


@pytest.fixture
def order(customer, products):
    a, b = products
    return place_order(customer=customer, cart_items=[CartItem(a.pk, 1), CartItem(b.pk, 2)])


def pay_by_debit(run, order, iban=IBAN_SUCCEEDS):
    attempt = run(payment_start, order=order)
    return run(local_bank_debit_pay, attempt=attempt, iban=iban)


def settle(run, *, days=DAYS, hours=1):
    """Settle what is due ``days`` and ``hours`` from now (the events processed)."""
    return run(local_debits_settle, now=timezone.now() + timedelta(days=days, hours=hours))


def stock(products):
    return [Product.objects.get(pk=p.pk).stock for p in products]


# --- the simulated processor -----------------------------------------------------------


def test_a_test_iban_makes_the_payment_processing_with_its_event(run, order):
    attempt = run(payment_start, order=order)

    payment = local.payment_confirm_bank_debit(
        payment_id=attempt.processor_payment_id, iban="at61 1904 3002 3457 3201"
    )

    intent = LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id)
    assert payment.status == PaymentStatus.PROCESSING == intent.status
    assert (intent.payment_method_type, intent.bank_last4) == (BANK_DEBIT, "3201")
    assert intent.settles_at > timezone.now() + timedelta(days=DAYS - 1)
    assert not intent.charge_id and intent.fee_minor is None
    event = LocalEvent.objects.get(type="payment_intent.processing")
    assert event.data["payment_method_types"] == [BANK_DEBIT]


def test_an_iban_that_is_not_a_test_one_is_refused_and_nothing_changes(run, order):
    attempt = run(payment_start, order=order)

    with pytest.raises(CardDeclined) as refused:
        run(local_bank_debit_pay, attempt=attempt, iban="DE89370400440532013000")

    assert refused.value.code == "invalid_iban" and "test IBAN" in refused.value.message
    intent = LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id)
    assert intent.status == PaymentStatus.REQUIRES_PAYMENT_METHOD
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.CREATED
    assert not LocalEvent.objects.filter(type__startswith="payment_intent.").exists()


def test_a_processing_debit_cannot_be_cancelled(run, order):
    attempt = pay_by_debit(run, order)

    with pytest.raises(InvalidProcessorRequest) as refused:
        local.payment_cancel(payment_id=attempt.processor_payment_id, idempotency_key="c")

    assert refused.value.code == "payment_intent_unexpected_state"
    assert LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id).status == "processing"


def test_confirming_a_processing_debit_again_changes_nothing(run, order):
    attempt = pay_by_debit(run, order)
    intent = LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id)

    again = local.payment_confirm_bank_debit(payment_id=intent.pk, iban=IBAN_FAILS)
    card = local.payment_confirm(payment_id=intent.pk, card_number="4242424242424242")

    assert again.status == card.status == PaymentStatus.PROCESSING
    intent.refresh_from_db()
    assert not intent.debit_fails and intent.payment_method_type == BANK_DEBIT
    assert LocalEvent.objects.filter(type="payment_intent.processing").count() == 1


def test_a_debit_that_is_not_due_is_not_settled(run, order):
    pay_by_debit(run, order)

    assert settle(run, days=DAYS - 1) == 0

    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT


def test_settling_twice_settles_once(run, order):
    pay_by_debit(run, order)

    assert settle(run) == 1
    assert settle(run) == 0

    assert LocalEvent.objects.filter(type="payment_intent.succeeded").count() == 1
    assert LedgerTransaction.objects.filter(kind="payment_captured").count() == 1


def test_the_beat_task_settles_what_is_due(run, order, settings):
    settings.PAYMENTS_LOCAL_DEBIT_DAYS = 0
    pay_by_debit(run, order)

    assert run(local_debits_settle_task.delay).get() == 1

    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_the_beat_schedule_runs_the_settlement_every_minute():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="payments.tasks.local_debits_settle_task")
    assert (task.interval.every, task.interval.period) == (1, "minutes")


# --- the order while processing --------------------------------------------------------


def test_a_processing_debit_keeps_the_order_awaiting_with_its_stock_and_posts_nothing(
    run, order, products, seller
):
    before = stock(products)

    attempt = pay_by_debit(run, order)

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT and order.paid_at is None
    assert (attempt.status, attempt.payment_method_type) == ("processing", BANK_DEBIT)
    assert stock(products) == before == [4, 3]
    assert not LedgerTransaction.objects.exists()
    assert seller_balance(seller=seller, currency="USD").pending == 0
    event = WebhookEvent.objects.get(type="payment_intent.processing")
    assert event.status == WebhookEvent.Status.PROCESSED


def test_expiry_leaves_an_order_whose_debit_is_processing_alone(run, order, products):
    pay_by_debit(run, order)

    expired = orders_expire_unpaid(now=timezone.now() + timedelta(days=2))

    order.refresh_from_db()
    assert expired == 0 and order.status == Order.Status.AWAITING_PAYMENT
    assert stock(products) == [4, 3]
    attempt = order.payment_attempts.get()
    assert attempt.status == PaymentAttempt.Status.PROCESSING


def test_expiry_keeps_an_order_whose_processing_event_is_late(run, order):
    attempt = run(payment_start, order=order)
    # Confirmed at the processor; its event not delivered (no ``run``): the attempt
    # does not know yet.
    local.payment_confirm_bank_debit(payment_id=attempt.processor_payment_id, iban=IBAN_SUCCEEDS)

    expired = orders_expire_unpaid(now=timezone.now() + timedelta(days=2))

    order.refresh_from_db()
    assert expired == 0 and order.status == Order.Status.AWAITING_PAYMENT


def test_a_payout_run_while_the_debit_is_processing_includes_nothing_of_it(
    run, order, seller, other_seller
):
    enable_payouts(seller)
    enable_payouts(other_seller)
    pay_by_debit(run, order)

    report = run(run_payouts, now=timezone.now() + timedelta(days=30), sellers=[seller])

    assert report.planned == [] or all(p.amount_minor == 0 for p in report.planned)
    assert not Payout.objects.exists()
    assert seller_balance(seller=seller, currency="USD").available == 0


# --- success ---------------------------------------------------------------------------


def test_a_settled_debit_pays_the_order_posts_it_and_the_hold_starts_at_success(
    run, order, seller, other_seller, mailoutbox
):
    confirmed_at = timezone.now()
    with time_machine.travel(confirmed_at, tick=False):
        pay_by_debit(run, order)
    succeeded_at = confirmed_at + timedelta(days=DAYS, hours=1)

    with time_machine.travel(succeeded_at, tick=False):
        assert run(local_debits_settle) == 1

    order.refresh_from_db()
    attempt = order.payment_attempts.get()
    assert order.status == Order.Status.PAID and order.paid_at == succeeded_at
    assert (attempt.status, attempt.payment_method_type) == ("succeeded", BANK_DEBIT)
    intent = LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id)
    assert intent.charge_id and intent.fee_minor == 30 + 116  # 2.9 % of 4000 + 30
    assert seller_balance(seller=seller, currency="USD").pending == 1800
    assert seller_balance(seller=other_seller, currency="USD").pending == 1800
    # The hold (7 days) counts from the success, not from the confirmation.
    assert holds_due(now=confirmed_at + timedelta(days=7, hours=2)) == []
    assert holds_due(now=succeeded_at + timedelta(days=7, minutes=1))
    assert order.customer.email in [m.to[0] for m in mailoutbox]
    assert ledger_check().ok


def test_the_disputed_test_iban_pays_then_opens_a_dispute(run, order):
    from payments.models import Dispute

    pay_by_debit(run, order, IBAN_DISPUTED)
    settle(run)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID and order.paid_at is not None
    assert Dispute.objects.filter(order=order).count() == 1
    assert ledger_check().ok


def test_a_late_success_for_an_order_cancelled_meanwhile_is_refunded(run, order):
    attempt = pay_by_debit(run, order)
    order_cancel(order=order)  # e.g. by an operator while the debit was processing

    settle(run)

    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.CANCELED
    refund = LocalRefund.objects.get(payment_intent_id=attempt.processor_payment_id)
    assert (refund.status, refund.metadata["reason"]) == ("succeeded", "order_expired")
    assert not LedgerTransaction.objects.filter(kind="payment_captured").exists()


# --- failure ---------------------------------------------------------------------------


def test_a_failed_debit_cancels_the_order_returns_the_stock_and_tells_the_customer_once(
    run, order, products, customer, mailoutbox
):
    attempt = pay_by_debit(run, order, IBAN_FAILS)

    settle(run)

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert (attempt.status, attempt.failure_message) == ("failed", DEBIT_FAILURE_MESSAGE)
    assert stock(products) == [5, 5]
    assert not LedgerTransaction.objects.exists()
    assert [m.to for m in mailoutbox] == [[customer.email]]
    assert mailoutbox[0].subject == f"Your payment for order #{order.pk} failed"
    assert DEBIT_FAILURE_MESSAGE in mailoutbox[0].body

    # The event delivered again: nothing more happens, no second email.
    event = WebhookEvent.objects.get(type="payment_intent.payment_failed")
    WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.RECEIVED)
    from payments.collection.webhooks import webhook_event_process

    run(webhook_event_process, webhook_event_id=event.pk)
    from payments.tasks import order_payment_failed_notify_task

    run(order_payment_failed_notify_task.delay, order.pk)
    assert len(mailoutbox) == 1 and stock(products) == [5, 5]


def test_a_declined_card_still_lets_the_customer_try_again(run, order, mailoutbox):
    attempt = run(payment_start, order=order)
    with pytest.raises(CardDeclined):
        run(
            local.payment_confirm,
            payment_id=attempt.processor_payment_id,
            card_number=CARD_DECLINED,
        )

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert (attempt.status, attempt.payment_method_type) == ("failed", "card")
    assert mailoutbox == []


def test_a_failure_for_an_order_paid_meanwhile_leaves_it_alone(run, order):
    attempt = pay_by_debit(run, order, IBAN_FAILS)
    # The processor says it failed; the order was paid otherwise meanwhile.
    LocalPaymentIntent.objects.filter(pk=attempt.processor_payment_id).update(
        status=PaymentStatus.REQUIRES_PAYMENT_METHOD
    )
    from payments.collection.captures import order_payment_captured

    order_payment_captured(order=order, processor_fee_minor=0)

    failure = payment_failed(
        payment_id=attempt.processor_payment_id, processor_name="local", message="no"
    )

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert failure is not None and not failure.order_cancelled


# --- events in any order ---------------------------------------------------------------


def test_a_processing_event_after_the_failure_does_not_reopen_the_attempt(run, order):
    attempt = pay_by_debit(run, order, IBAN_FAILS)
    settle(run)

    payment_processing(
        payment_id=attempt.processor_payment_id, processor_name="local", method_type=BANK_DEBIT
    )

    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.FAILED


def test_a_failed_event_after_the_success_changes_nothing(run, order):
    attempt = pay_by_debit(run, order)
    settle(run)

    failure = payment_failed(
        payment_id=attempt.processor_payment_id, processor_name="local", message="late"
    )

    order.refresh_from_db()
    assert failure is None and order.status == Order.Status.PAID


def test_a_success_event_read_before_the_settlement_changes_nothing(run, order):
    attempt = pay_by_debit(run, order)

    assert (
        payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local") is None
    )

    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert not LedgerTransaction.objects.exists()


def test_the_failure_tells_the_method_from_the_event_when_the_attempt_does_not_know(run, order):
    attempt = run(payment_start, order=order)
    local.payment_confirm_bank_debit(payment_id=attempt.processor_payment_id, iban=IBAN_FAILS)
    local.debit_settle(
        payment_id=attempt.processor_payment_id, now=timezone.now() + timedelta(days=DAYS + 1)
    )
    # Only the failure event is delivered (the processing one is lost).
    failed = LocalEvent.objects.get(type="payment_intent.payment_failed")
    from payments.tasks import local_event_deliver

    run(local_event_deliver.delay, failed.pk)

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert attempt.payment_method_type == BANK_DEBIT


def test_a_new_try_copes_with_an_earlier_payment_processing_at_the_processor(run, order):
    first = run(payment_start, order=order)
    with pytest.raises(CardDeclined):
        run(local.payment_confirm, payment_id=first.processor_payment_id, card_number=CARD_DECLINED)
    # A stale tab pays the first (failed) payment by bank debit meanwhile.
    local.payment_confirm_bank_debit(payment_id=first.processor_payment_id, iban=IBAN_SUCCEEDS)

    second = run(payment_start, order=order)  # cancelling the first is refused: kept as is

    first.refresh_from_db()
    assert second.number == 2 and first.status == PaymentAttempt.Status.FAILED
    assert LocalPaymentIntent.objects.get(pk=first.processor_payment_id).status == "processing"
    settle(run)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID  # the first payment, when it succeeded
    assert LedgerTransaction.objects.filter(kind="payment_captured").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_processor_is_never_called_inside_a_transaction_when_paying_again(client, monkeypatch):
    from payments.collection.checkout import local_card_pay, payment_start
    from payments.processors.base import CardDeclined
    from payments.processors.local import CARD_DECLINED, LocalProcessor

    CommissionRuleFactory(percentage_bps=1000)
    customer = UserFactory()
    product = ProductFactory(price_minor=5000, stock=3)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = payment_start(order=order)
    with pytest.raises(CardDeclined):
        local_card_pay(attempt=attempt, card_number=CARD_DECLINED)
    calls = []
    real = LocalProcessor.payment_cancel

    def cancel(self, **kwargs):
        calls.append(connection.in_atomic_block)
        return real(self, **kwargs)

    monkeypatch.setattr(LocalProcessor, "payment_cancel", cancel)
    client.force_login(customer)

    client.get(reverse("marketplace:order_pay", args=[order.pk]))

    assert calls == [False]
