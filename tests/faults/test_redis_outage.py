"""Stop Redis (broker and cache) while customers buy and the processor sends webhooks:
pages, checkout and the webhook endpoint keep answering, because everything is
stored in PostgreSQL first; once Redis is back, the tasks it refused are queued
again and every order and event is processed exactly once."""

import uuid

import pytest
import requests
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.db import connection
from django.db.models import Count

from marketplace.models import DeferredTask, Order
from payments.checks import ledger_check
from payments.models import LedgerTransaction, WebhookEvent
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.faults.shopper import Item, Shopper, ignored_event, post_webhook
from tests.faults.stack import database_url, wait_for
from tests.money_helpers import enable_payouts

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres,
    pytest.mark.redis_server,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "fault-test-pass"
ORDERS_WHILE_DOWN = 4
EVENTS_WHILE_DOWN = 10


@pytest.fixture
def shop():
    """Three sellers with stock, and a customer who can log in to gunicorn (whose
    settings verify Argon2, not the tests' fast hasher)."""
    CommissionRuleFactory(percentage_bps=1000)
    items = []
    for _ in range(3):
        product = ProductFactory(seller=enable_payouts(SellerFactory()), stock=100)
        items.append(Item(product.pk, product.slug))
    customer = UserFactory()
    customer.password = Argon2PasswordHasher().encode(PASSWORD, uuid.uuid4().hex[:22])
    customer.save(update_fields=["password"])
    return customer, items


def test_with_redis_stopped_nothing_is_refused_and_nothing_is_lost(
    redis_server, stacks, app_env, shop
):
    customer, items = shop
    stack = stacks(
        app_env(
            database_url=database_url(connection.settings_dict),
            broker_url=redis_server.url(0),
            CACHE_URL=redis_server.url(1),  # the API's rate limits share the Redis
        )
    )
    _, base = stack.web()
    stack.worker()
    shopper = Shopper(base)
    shopper.login(customer.email, PASSWORD)
    first = shopper.buy(items)
    wait_for(lambda: shopper.is_paid(first), timeout=60, what="the first order was not paid")

    redis_server.stop()

    health = requests.get(f"{base}/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert shopper.get("/").status_code == 200
    assert shopper.get("/api/v1/products/").status_code == 200
    placed = [shopper.buy(items) for _ in range(ORDERS_WHILE_DOWN)]
    event_ids = [f"evt_down_{n}" for n in range(EVENTS_WHILE_DOWN)]
    for event_id in event_ids + event_ids[:3]:  # three redelivered
        assert (
            post_webhook(base, stack.env["SECRET_KEY"], ignored_event(event_id)).status_code == 200
        )
    assert not any(shopper.is_paid(order) for order in placed)  # waiting, not failed
    assert DeferredTask.objects.exists()

    redis_server.start()  # same port: the processes reconnect by themselves
    stack.send_task("marketplace.tasks.deferred_tasks_send_task")  # beat, every minute

    wait_for(
        lambda: all(shopper.is_paid(order) for order in placed),
        timeout=120,
        what="orders placed while Redis was down were not paid",
    )
    stored = WebhookEvent.objects.filter(event_id__in=event_ids)
    wait_for(
        lambda: stored.filter(status=WebhookEvent.Status.IGNORED).count() == EVENTS_WHILE_DOWN,
        timeout=60,
        what="events received while Redis was down were not processed",
    )
    assert stored.count() == EVENTS_WHILE_DOWN
    assert set(stored.values_list("attempts", flat=True)) == {1}
    assert not DeferredTask.objects.exists()
    all_orders = [first, *placed]
    assert set(Order.objects.filter(pk__in=all_orders).values_list("status", flat=True)) == {
        Order.Status.PAID
    }
    captures = (
        LedgerTransaction.objects.filter(kind="payment_captured")
        .values("reference_id")
        .annotate(n=Count("pk"))
    )
    assert sorted(int(row["reference_id"]) for row in captures) == sorted(all_orders)
    assert {row["n"] for row in captures} == {1}
    assert ledger_check().ok
