"""Checkout load with payout runs and webhook redeliveries at the same time, for
SOAK_SECONDS (15 s in CI, 60 s with `make soak`): afterwards the ledger is
consistent, every paid order is in the ledger once, and no seller was paid more
than they earned.

Earnings are released at once (PAYMENTS_HOLD_DAYS=0), so each payout run races the
captures of the orders being paid while it plans and sends.
"""

import random
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.db import connection
from django.db.models import Count, Sum

from marketplace.models import Order
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import LedgerEntry, LedgerTransaction, LocalEvent, Payout, WebhookEvent
from payments.processors.local import LocalProcessor
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.faults.conftest import SOAK_SECONDS
from tests.faults.shopper import Item, Shopper, ShopperError, post_webhook
from tests.faults.stack import LoadThreads, database_url, wait_for
from tests.money_helpers import enable_payouts

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres,
    pytest.mark.redis_server,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

SHOPPERS = 3
PASSWORD = "soak-test-pass"
# What reaches a seller's accounts from outside; the rest are moves between them.
EARNING_KINDS = ("payment_captured", "processor_fee", "refund", "dispute_lost", "adjustment")
NOT_PAID_OUT = (Payout.Status.FAILED, Payout.Status.CANCELLED)


def test_checkout_load_with_payout_runs_and_webhook_redeliveries(redis_server, stacks, app_env):
    CommissionRuleFactory(percentage_bps=1000)
    sellers = [enable_payouts(SellerFactory()) for _ in range(3)]
    items = [
        Item(product.pk, product.slug)
        for product in (ProductFactory(seller=seller, stock=100_000) for seller in sellers)
    ]
    hasher = Argon2PasswordHasher()
    customers = []
    for _ in range(SHOPPERS):
        customer = UserFactory()
        customer.password = hasher.encode(PASSWORD, uuid.uuid4().hex[:22])
        customer.save(update_fields=["password"])
        customers.append(customer.email)
    stack = stacks(
        app_env(
            database_url=database_url(connection.settings_dict),
            broker_url=redis_server.url(0),
            PAYMENTS_HOLD_DAYS="0",
        )
    )
    _, base = stack.web()
    stack.worker(concurrency=2)

    placed: list[int] = []
    failures: list[str] = []
    redelivered = Counter()
    runs = 0
    stop = threading.Event()

    def shop(email: str) -> None:
        shopper = Shopper(base)
        try:
            shopper.login(email, PASSWORD)
            while not stop.is_set():
                placed.append(shopper.buy(items))
        except (ShopperError, requests.RequestException) as exc:
            failures.append(f"{email}: {exc}")

    def redeliver() -> None:
        """The processor sending events again (it does, after timeouts): any event
        already delivered, signed afresh."""
        try:
            while not stop.is_set():
                ids = list(
                    LocalEvent.objects.filter(type="payment_intent.succeeded").values_list(
                        "pk", flat=True
                    )
                )
                if not ids:
                    time.sleep(0.2)
                    continue
                event = LocalEvent.objects.get(pk=random.choice(ids))
                payload = LocalProcessor.event_payload(event)
                response = post_webhook(base, stack.env["SECRET_KEY"], payload)
                redelivered[response.status_code] += 1
                time.sleep(0.05)
        finally:
            connection.close()

    def run_payouts() -> None:
        nonlocal runs
        while not stop.wait(max(2.0, SOAK_SECONDS / 5)):
            stack.send_task("payments.tasks.run_payouts_task")  # as beat does
            runs += 1

    load = LoadThreads()
    started = time.monotonic()
    for email in customers:
        load.start(shop, email)
    load.start(redeliver)
    load.start(run_payouts)
    time.sleep(SOAK_SECONDS)
    stop.set()
    load.join(timeout=120)
    elapsed = time.monotonic() - started

    assert not failures, failures
    assert placed and runs and redelivered, (placed, runs, redelivered)
    assert set(redelivered) == {200}
    wait_for(
        lambda: (
            not Order.objects.filter(pk__in=placed).exclude(status="paid").exists()
            and not Payout.objects.filter(
                status__in=(
                    Payout.Status.SCHEDULED,
                    Payout.Status.SENDING,
                    Payout.Status.IN_TRANSIT,
                )
            ).exists()
            and not WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED).exists()
        ),
        timeout=180,
        what="orders, payouts or events were left unsettled",
    )
    payouts = Payout.objects.exclude(status__in=NOT_PAID_OUT)
    print(
        f"{len(placed)} orders in {elapsed:.0f} s ({len(placed) / elapsed:.2f}/s) from"
        f" {SHOPPERS} shoppers; {runs} payout runs made {payouts.count()} payouts;"
        f" {sum(redelivered.values())} webhook redeliveries"
    )

    assert ledger_check().ok
    captures = (
        LedgerTransaction.objects.filter(kind="payment_captured")
        .values("reference_id")
        .annotate(n=Count("pk"))
    )
    assert {row["n"] for row in captures} == {1}
    paid_orders = Order.objects.filter(status="paid").values_list("pk", flat=True)
    assert sorted(int(row["reference_id"]) for row in captures) == sorted(paid_orders)
    assert set(placed) <= set(paid_orders)
    assert not WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).exists()
    for seller in sellers:
        earned = -(
            LedgerEntry.objects.filter(
                account__seller=seller, transaction_kind__in=EARNING_KINDS
            ).aggregate(total=Sum("amount_minor"))["total"]
            or 0
        )
        paid_out = payouts.filter(seller=seller).aggregate(total=Sum("amount_minor"))["total"]
        balance = seller_balance(seller=seller, currency="USD")
        assert (paid_out or 0) <= earned
        assert min(balance.pending, balance.available, balance.in_transit) >= 0
        assert balance.paid_out == (paid_out or 0)
        assert balance.pending + balance.available + balance.in_transit + balance.paid_out == earned
