"""Benchmark: webhook events accepted per second (verified, stored, enqueued), with 10 %
duplicates, then processed by a real Celery worker, each exactly once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/10 \\
        .venv/bin/python -m bench.webhooks --events 2000

Set-up: orders awaiting payment (three sellers each) with a succeeded payment at
the local processor and a payment attempt waiting for it, and sellers whose
connected account has finished onboarding while the shop still says "onboarding".
The events are the local processor's own (``LocalProcessor.event_payload``), half
``payment_intent.succeeded`` (one per order: the handler records the capture, i.e.
two ledger postings, the order paid and its emails queued) and half
``account.updated`` (one per seller and round: the handler re-reads the account
and enables the seller's payouts). Then 10 % of them are sent again, each after
its first delivery, interleaved (a redelivery of an id already stored).

Acceptance: every event is POSTed, signed, to ``/payments/webhooks/local/`` through
Django's test client (the real view, middleware and ``webhook_receive``, in
process), with Celery not eager, so each new event is published to the Redis
broker when its transaction commits. The limit, timed in the same run on the same
database, alternating in rounds with the service: raw SQL through psycopg
inserting the same event rows (``INSERT ... ON CONFLICT DO NOTHING``, one
transaction each) and, for each row inserted, an ``LPUSH`` of the very message
Celery published for an event (read back from the broker) to a list no worker
reads.

Processing: a ``celery -A marketplace worker`` subprocess on a queue of this run's
own drains the broker; the time is until no event is left received or failed and
the queue is empty. Then exactly-once is checked: one stored event per distinct id,
each processed once (``attempts == 1``, status processed), one payment capture per
order (ledger checked with ``ledger_check``), every seller enabled, no task kept
for later by the broker fallback.

Prints one table row (``bench/report.py``). The ratio has no target in the issue;
``--min-ratio`` (default 0.2) is the one proposed here: the service verifies an
HMAC, runs Django's middleware and view, and stores headers and payload as JSON,
which the raw limit does not. The database and both Redis databases are wiped
first: never point them at anything you care about.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DUPLICATES = 0.10
TABLE_PREFIXES = ("payments_", "marketplace_", "accounts_", "django_", "axes_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="distinct events")
    parser.add_argument("--rounds", type=int, default=10, help="service and raw alternate")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--min-ratio", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to process")
    parser.add_argument("--quick", action="store_true", help="200 events (CI smoke size)")
    parser.add_argument("--verbose", action="store_true", help="SQL statements by kind")
    args = parser.parse_args()
    n = 200 if args.quick else args.events
    queue = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from bench.raw import raw_connection
    from marketplace.celery import app

    logging.disable(logging.WARNING)
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    broker, backend = settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND
    if not (broker.startswith("redis://") and backend.startswith("redis://")):
        sys.exit("Run the benchmark with Redis as broker and result backend (CELERY_*_URL).")
    if app.conf.task_always_eager:
        sys.exit("Celery is eager: the benchmark needs a real publish.")
    queues = redis.Redis.from_url(broker)
    queues.flushdb()
    redis.Redis.from_url(backend).flushdb()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    setup_test_environment()  # the test client's host; nothing else here depends on it
    settings.DEBUG = False  # as in production: no query log, no debug cursor

    from marketplace.models import DeferredTask, Order
    from payments.checks import ledger_check
    from payments.models import LedgerTransaction, PaymentAttempt, WebhookEvent
    from payments.processors.local import SIGNATURE_HEADER, sign

    started = time.perf_counter()
    events = _world(n)
    rng = random.Random(8)
    sends = _with_duplicates(events, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    built = time.perf_counter() - started

    client = Client()
    url = reverse("payments:webhook", kwargs={"processor": "local"})
    statements = 0
    by_kind: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        words = [w.strip('"(') for w in sql.split()]
        table = next((w for w in words if w.startswith(TABLE_PREFIXES)), "")
        by_kind[f"{words[0]} {table}".strip()] += 1
        return execute(sql, params, many, context)

    answers: Counter[int] = Counter()

    def service(batch: list[tuple[str, bytes]]) -> None:
        signed = [(payload, sign(payload)) for _, payload in batch]
        with connection.execute_wrapper(count):
            for payload, signature in signed:
                response = client.post(
                    url,
                    data=payload,
                    content_type="application/json",
                    headers={SIGNATURE_HEADER: signature},
                    secure=True,
                )
                answers[response.status_code] += 1

    # The limit: the same rows through psycopg, and the message Celery publishes,
    # pushed to a list of its own. The message is the one published for the first
    # event, read back from the queue (its ids are the same for every push).
    client.post(
        url,
        data=sends[0][1],
        content_type="application/json",
        headers={SIGNATURE_HEADER: sign(sends[0][1])},
        secure=True,
    )
    message = queues.lindex(queue, 0)
    assert message, f"nothing was published to {queue}"
    raw_list = f"{queue}-raw"
    raw = raw_connection()
    raw_statements = 0

    def raw_sql(batch: list[tuple[str, bytes]]) -> None:
        nonlocal raw_statements
        for _, payload in batch:
            body = json.loads(payload)
            with raw.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO payments_webhookevent (processor, event_id, type, account,"
                    " livemode, payload, headers, status, attempts, last_error, received_at)"
                    " VALUES ('raw', %s, %s, %s, %s, %s, %s, 'received', 0, '', now())"
                    " ON CONFLICT (processor, event_id) DO NOTHING RETURNING id",
                    [
                        body["id"],
                        body["type"],
                        body.get("account") or "",
                        bool(body.get("livemode")),
                        payload.decode(),
                        json.dumps({"Content-Type": "application/json"}),
                    ],
                )
                inserted = cursor.fetchone()
            raw.commit()
            raw_statements += 1
            if inserted is not None:
                queues.lpush(raw_list, message)

    rest = sends[1:]
    rounds = max(1, min(args.rounds, len(rest)))
    bounds = [len(rest) * r // rounds for r in range(rounds + 1)]
    times = {"service": 0.0, "raw": 0.0}
    runners = {"service": service, "raw": raw_sql}
    load_before = os.getloadavg()
    for r in range(rounds):
        batch = rest[bounds[r] : bounds[r + 1]]
        for name in ("service", "raw") if r % 2 == 0 else ("raw", "service"):
            t0 = time.perf_counter()
            runners[name](batch)
            times[name] += time.perf_counter() - t0
    load_after = os.getloadavg()
    raw.close()
    timed = len(rest)
    published = queues.llen(queue)
    raw_pushed = queues.llen(raw_list)
    queues.delete(raw_list)

    # Processing: a real worker on this run's queue, until nothing is left to do.
    worker, log = _worker(queue, args.concurrency)
    t0 = time.perf_counter()
    local = WebhookEvent.objects.filter(processor="local")
    deadline = t0 + args.timeout
    while time.perf_counter() < deadline:
        waiting = local.filter(status__in=["received", "failed"]).count()
        if not waiting and not queues.llen(queue) and not queues.hlen("unacked"):
            break
        if worker.poll() is not None:
            break
        time.sleep(0.5)
    processing = time.perf_counter() - t0
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    log.close()

    # Exactly once.
    distinct = len(events)
    stored = local.count()
    by_status = Counter(local.values_list("status", flat=True))
    attempts = Counter(local.values_list("attempts", flat=True))
    orders = Order.objects.count()
    captures = LedgerTransaction.objects.filter(kind="payment_captured").count()
    paid = Order.objects.filter(status="paid").count()
    succeeded = PaymentAttempt.objects.filter(status="succeeded").count()
    from accounts.models import Seller

    told = {json.loads(payload)["account"] for _, payload in events} - {None}
    not_enabled = (
        Seller.objects.filter(payout_account_id__in=told).exclude(payout_status="enabled").count()
    )
    from django.db.models import Max, Min

    span = local.aggregate(first=Min("processed_at"), last=Max("processed_at"))
    busy = (span["last"] - span["first"]).total_seconds() if span["last"] else float("nan")
    deferred = DeferredTask.objects.count()
    ledger = ledger_check()
    checks = {
        "stored == distinct ids": stored == distinct,
        "all processed": by_status == {"processed": distinct},
        "attempts all 1": attempts == {1: distinct},
        "one capture per order": captures == orders == paid == succeeded,
        "sellers told enabled": not_enabled == 0,
        "published once per distinct id": (
            published == distinct and raw_pushed == len({event_id for event_id, _ in rest})
        ),
        "nothing deferred": deferred == 0,
        "answers 200": answers == {200: timed},
        "ledger": ledger.ok,
    }
    once = all(checks.values())

    service_rate = timed / times["service"]
    raw_rate = timed / times["raw"]
    ratio = service_rate / raw_rate
    from bench.report import Row, emit

    emit(
        Row(
            what=(
                "webhook ingestion (local events: half payment_intent.succeeded, half "
                "account.updated; 10 % redelivered)"
            ),
            work=(
                f"{timed} POSTs each, service and raw ({distinct} distinct ids), "
                f"{rounds} alternating rounds; then a {args.concurrency}-process worker"
            ),
            time=(
                f"accept: service {times['service']:.2f} s, raw {times['raw']:.2f} s; "
                f"process {busy:.1f} s (first to last event processed; {processing:.1f} s"
                " with the worker's start)"
            ),
            rate=(
                f"accepted: service {service_rate:.0f}/s, raw {raw_rate:.0f}/s; "
                f"processed {distinct / busy:.0f}/s"
            ),
            statements=(
                f"service {statements / timed:.1f}, raw {raw_statements / timed:.1f} per event"
                " (+ COMMIT; + 1 publish per new id)"
            ),
            against="raw SQL through psycopg (ON CONFLICT DO NOTHING) + redis LPUSH",
            ratio=f"{ratio:.2f} (proposed ≥ {args.min_ratio:.2f})",
            target=f"processed exactly once: {'yes' if once else 'no'}",
            met=once and ratio >= args.min_ratio,
        )
    )
    print(
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after accepting "
        f"({os.cpu_count()} CPUs); set-up {built:.1f} s; broker queue {queue}"
    )
    for name, ok in checks.items():
        if not ok:
            print(f"  exactly-once check failed: {name}")
    if not once:
        print(
            f"  stored {stored}/{distinct}, statuses {dict(by_status)}, attempts "
            f"{dict(attempts)}, captures {captures}, orders {orders}, paid {paid}, "
            f"attempts succeeded {succeeded}, sellers not enabled {not_enabled}, "
            f"published {published}, raw pushed {raw_pushed}, deferred {deferred}, "
            f"answers {dict(answers)}, ledger problems {ledger.problems[:3]}; "
            f"worker log {log.name}"
        )
    if args.verbose:
        for kind, number in by_kind.most_common():
            print(f"  {number / timed:6.2f} per event  {kind}")


def _world(n: int) -> list[tuple[str, bytes]]:
    """The set-up, and the ``n`` events as (id, payload) in the order they are sent."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import Seller
    from bench.ledger_posting import _orders
    from payments.models import LocalEvent, LocalPaymentIntent, PaymentAttempt
    from payments.processors.local import LocalProcessor, processing_fee

    payments = n // 2
    accounts = n - payments
    orders = _orders(payments, sellers=30)
    now = timezone.now()
    with transaction.atomic():
        intents = LocalPaymentIntent.objects.bulk_create(
            LocalPaymentIntent(
                id=f"pi_local_bench{order.pk}",
                amount_minor=order.total_minor,
                currency=order.currency,
                status="succeeded",
                client_secret=f"pi_local_bench{order.pk}_secret",
                transfer_group=f"order-{order.pk}",
                metadata={"order_id": str(order.pk)},
                charge_id=f"ch_local_bench{order.pk}",
                fee_minor=processing_fee(order.total_minor),
                card_last4="4242",
                idempotency_key=f"bench-pi-{order.pk}",
            )
            for order in orders
        )
        PaymentAttempt.objects.bulk_create(
            PaymentAttempt(
                order=order,
                number=1,
                processor="local",
                processor_payment_id=intent.id,
                amount_minor=order.total_minor,
                currency=order.currency,
                status=PaymentAttempt.Status.PROCESSING,
                idempotency_key=f"bench-attempt-{order.pk}",
            )
            for order, intent in zip(orders, intents, strict=True)
        )
        Seller.objects.update(payout_status=Seller.PayoutStatus.ONBOARDING)
        sellers = list(Seller.objects.order_by("pk").values_list("payout_account_id", flat=True))

    made = [
        LocalEvent(
            id=f"evt_local_bench_pi{i}",
            type="payment_intent.succeeded",
            account="",
            data=LocalProcessor._payment_data(intent),
            created_at=now,
        )
        for i, intent in enumerate(intents)
    ] + [
        LocalEvent(
            id=f"evt_local_bench_acct{i}",
            type="account.updated",
            account=sellers[i % len(sellers)],
            data={"object": "account", "id": sellers[i % len(sellers)]},
            created_at=now,
        )
        for i in range(accounts)
    ]
    random.Random(5).shuffle(made)
    return [(event.id, LocalProcessor.event_payload(event)) for event in made]


def _with_duplicates(
    events: list[tuple[str, bytes]], rng: random.Random
) -> list[tuple[str, bytes]]:
    """The events, and 10 % of them again, each some time after its first delivery."""
    sends = list(events)
    for index in sorted(rng.sample(range(len(events)), round(len(events) * DUPLICATES))):
        first = sends.index(events[index])
        sends.insert(rng.randint(first + 1, len(sends)), events[index])
    return sends


def _worker(queue: str, concurrency: int):
    """``celery -A marketplace worker`` on ``queue``, logging to a file."""
    log = open(f"/tmp/{queue}.log", "w")  # noqa: SIM115, S108 (closed by the caller)
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_URL": "dummymail://",
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
            "--hostname",
            f"{queue}@%h",
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


if __name__ == "__main__":
    main()
