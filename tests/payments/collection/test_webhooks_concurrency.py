"""The same event delivered twice at the same moment, on PostgreSQL: stored once, paid once."""

import pytest

from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.webhooks import webhook_receive
from payments.models import LedgerTransaction, LocalEvent, LocalPaymentIntent, WebhookEvent
from payments.processors.local import SIGNATURE_HEADER, LocalProcessor, processing_fee, sign
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.payments.test_concurrency_money import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_event_delivered_eight_times_at_once_pays_the_order_once(
    customer, seller, eager_celery
):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=5000, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = payment_start(order=order)
    # The processor took the payment; its event is about to be delivered.
    LocalPaymentIntent.objects.filter(pk=attempt.processor_payment_id).update(
        status="succeeded", charge_id="ch_local_x", fee_minor=processing_fee(5000)
    )
    event = LocalEvent.objects.create(
        id="evt_local_race",
        type="payment_intent.succeeded",
        data={"object": "payment_intent", "id": attempt.processor_payment_id},
    )
    payload = LocalProcessor.event_payload(event)

    results = run_together(
        8,
        lambda: webhook_receive(
            processor_name="local", payload=payload, headers={SIGNATURE_HEADER: sign(payload)}
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert WebhookEvent.objects.filter(event_id="evt_local_race").count() == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert LedgerTransaction.objects.filter(kind="payment_captured").count() == 1
    assert Order.objects.get().status == Order.Status.PAID
    assert ledger_check().ok
