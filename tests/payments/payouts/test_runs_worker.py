"""End to end with a real Celery worker process on Redis and PostgreSQL: the
scheduled payout run (as beat sends it) creates, sends and settles payouts."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from marketplace.celery import app
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import Payout
from payments.payouts.holds import seller_order_hold_release
from payments.tasks import run_payouts_task
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

BASE_DIR = Path(__file__).resolve().parents[3]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def payout_worker():
    """A worker on a queue of its own, using the test database."""
    queue = f"test-payouts-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    database_url = f"postgres://{credentials}@{host}/{db['NAME']}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "DATABASE_URL": database_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "marketplace",
            "worker",
            "--queues",
            queue,
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    app.conf.task_default_queue = previous
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    print(output)


def test_the_scheduled_payout_run_pays_a_seller_through_a_real_worker(seller, payout_worker):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())

    run_payouts_task.apply_async(queue=payout_worker)  # what beat sends

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        payout = Payout.objects.filter(seller=seller).first()
        if payout is not None and payout.status == Payout.Status.PAID:
            break
        time.sleep(0.5)
    assert payout is not None and payout.status == Payout.Status.PAID, payout
    assert seller_balance(seller=seller, currency="USD").paid_out == 9000
    assert ledger_check().ok
