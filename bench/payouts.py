"""Benchmark: a payout run in chunks on two worker processes, against raw SQL doing the
same batched inserts, then sending through the local processor, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench_payouts \\
        .venv/bin/python -m bench.payouts            # the issue's size: 100,000 x 10
    ... -m bench.payouts --quick                      # a smoke size: 1,000 x 10

The data set: N sellers whose available accounts hold 10 ledger entries each, built
by set-based SQL (``generate_series``), as the posting service would leave them.

1. **Creation.** ``payout_run_start`` (run row and chunk rows, seller-id ranges by
   keyset) then every chunk by ``payout_run_chunk_make``, spread over two worker
   processes (``multiprocessing``, *spawn*: fresh interpreters, each with its own
   connection; the chunk tasks' code, run without a broker between the two).
   Each chunk queues, on commit, the task that publishes its payouts' send tasks
   (to Redis, as a real run does). The limit is raw SQL in the same two processes
   over the same chunks doing the same batched work per chunk in one transaction:
   the chunk's row lock, the sellers' money locks, their balances, policies and
   claims, ``INSERT … ON CONFLICT DO NOTHING`` of the payouts, ``INSERT … SELECT``
   of their breakdowns, the run's progress. The rows both leave are compared
   (target: at least 1/2 of the raw rate).
2. **Sending.** Send tasks consumed by two real Celery worker processes (``--pool
   solo``) on Redis, measured on the run's first ``--send-sample`` payouts (their
   send tasks queued by ``payout_sends_enqueue``, the run's own service), with the
   processor's pacing raised (``PAYMENTS_PROCESSOR_WRITES_PER_SECOND=1000000``,
   ``PAYMENTS_PAYOUT_RATE_LIMIT=100000/s``: the local processor has no limit). Each
   payout's transfer, bank payout, ``payout.paid`` event through the webhook
   pipeline and emails are real tasks on the same two workers. Timed from the first
   payout at the bank (in transit or paid) to the last of the sample; target 100 a
   second.
3. **Memory.** The peak RSS of the run's processes (the two workers that start it
   and make its chunks, ``ru_maxrss``) at 10,000 and at 100,000 sellers: flat
   within 20 %.

Redis databases 15 (broker) and 1 (results) are emptied, and the database is wiped:
never point either at something you care about. Timings are wall clock and other
work on the machine inflates them (the load average is printed); the ratio is
measured in the same run on the same database.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from typing import Any

ISSUE_SELLERS, ISSUE_RSS_SIZES = 100_000, (10_000, 100_000)
QUICK_SELLERS, QUICK_RSS_SIZES = 1_000, (200, 1_000)
ENTRIES = 10
WORKERS = 2
CHUNK_SIZE = 500
TARGET_RATIO = 0.5
TARGET_SEND_RATE = 100.0
RSS_FLAT = 1.20
PAYOUT_KINDS = ("payout_sent", "payout_paid", "payout_failed")
BROKER_URL, RESULTS_URL = "redis://127.0.0.1:6379/15", "redis://127.0.0.1:6379/1"
BENCH_ENV = {
    "CELERY_BROKER_URL": BROKER_URL,
    "CELERY_RESULT_BACKEND": RESULTS_URL,
    "PAYMENTS_PROCESSOR_WRITES_PER_SECOND": "1000000",
    "PAYMENTS_PAYOUT_RATE_LIMIT": "100000/s",
    "PAYOUT_RUN_CHUNK_SIZE": str(CHUNK_SIZE),
    "DJANGO_SETTINGS_MODULE": "marketplace.settings",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=ISSUE_SELLERS)
    parser.add_argument("--send-sample", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="smoke size: 1,000 x 10")
    args = parser.parse_args()
    rss_sizes = ISSUE_RSS_SIZES
    if args.quick:
        args.sellers, rss_sizes, args.send_sample = QUICK_SELLERS, QUICK_RSS_SIZES, 300
    os.environ.update(BENCH_ENV)  # the benchmark's own Redis databases and pacing
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.db import connection

    from bench.report import Row, emit

    logging.disable(logging.INFO)
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    n = args.sellers
    load_before = os.getloadavg()[0]
    print(f"load average before: {os.getloadavg()}", flush=True)

    # Memory at the smaller size first (the larger one is the creation run below).
    small = rss_sizes[0]
    build(small)
    small_run = create(service=True)
    print(f"service at {small:,}: {small_run}", flush=True)

    built = build(n)
    raw = create(service=False)
    raw_rows = rows_left()
    print(f"raw SQL at {n:,}: {raw}", flush=True)
    build(n)
    flush_redis()
    service = create(service=True)
    service_rows = rows_left()
    print(f"service at {n:,}: {service}", flush=True)
    load_after = os.getloadavg()[0]

    same_rows = raw_rows == service_rows
    if not same_rows:
        print("The two runs left different rows (table: raw, service):")
        for key in sorted(set(raw_rows) | set(service_rows)):
            if raw_rows.get(key) != service_rows.get(key):
                print(f"  {key}: {raw_rows.get(key)}, {service_rows.get(key)}")
    made = service_rows.get("payouts", 0)
    service_rate, raw_rate = made / service["seconds"], made / raw["seconds"]
    ratio = service_rate / raw_rate
    chunks = service["chunks"]
    emit(
        Row(
            what=f"payout run creation, {WORKERS} processes",
            work=(
                f"{n:,} sellers x {ENTRIES} entries in {chunks} chunks of {CHUNK_SIZE} "
                f"(made {made:,}; set-up {built:.0f} s)"
            ),
            time=(
                f"{service['seconds']:.1f} s, raw SQL {raw['seconds']:.1f} s "
                f"(load avg {load_before:.2f} then {load_after:.2f})"
            ),
            rate=f"{service_rate:.0f} payouts/s, raw SQL {raw_rate:.0f}",
            statements=(
                f"{service['statements'] / chunks:.1f} per chunk, "
                f"raw SQL {raw['statements'] / chunks:.1f}"
            ),
            against="raw SQL: same batched inserts per chunk, same 2 processes"
            + ("" if same_rows else " (ROWS DIFFER)"),
            ratio=f"{ratio:.2f} of the raw rate",
            target=f"at least {TARGET_RATIO} of the raw rate",
            met=same_rows and made == n and ratio >= TARGET_RATIO,
        )
    )

    flat = service["rss_mb"] / small_run["rss_mb"]
    emit(
        Row(
            what="payout run peak RSS",
            work=f"{small:,} then {n:,} sellers, per worker process",
            time=f"{small_run['seconds']:.1f} s, {service['seconds']:.1f} s",
            rate=f"{small_run['rss_mb']:.0f} MB, {service['rss_mb']:.0f} MB",
            statements=f"{small_run['statements']:,}, {service['statements']:,} in all",
            against=f"the run at {small:,} sellers",
            ratio=f"{flat:.2f} of its peak RSS",
            target=f"at most {RSS_FLAT:.2f}",
            met=flat <= RSS_FLAT,
        )
    )

    sent, seconds, paid = send(min(made, args.send_sample))
    send_rate = sent / seconds if seconds else 0.0
    emit(
        Row(
            what=f"payout sending, local processor, {WORKERS} Celery workers",
            work=(
                f"{sent:,} of {made:,} payouts to the bank ({paid:,} paid by then); "
                "processor pacing raised"
            ),
            time=f"{seconds:.1f} s (load avg {os.getloadavg()[0]:.2f})",
            rate=f"{send_rate:.1f} payouts/s",
            statements="-",
            against="the issue's target",
            ratio=f"{send_rate / TARGET_SEND_RATE:.2f} of {TARGET_SEND_RATE:.0f}/s",
            target=f"{TARGET_SEND_RATE:.0f} payouts/s",
            met=send_rate >= TARGET_SEND_RATE,
        )
    )
    flush_redis()


# --- The data set -------------------------------------------------------------------


def build(n: int) -> float:
    """Wipe the database and build ``n`` sellers with ``ENTRIES`` available entries
    each, in set-based SQL; returns the seconds it took."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from payments.models import LedgerAccount, LedgerBalanceShard

    call_command("flush", interactive=False, verbosity=0)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO accounts_user ({", ".join(_user_columns())})
            SELECT {", ".join(_user_values())} FROM generate_series(1, %s) g
            """,  # noqa: S608 (our own column names)
            [n],
        )
        cursor.execute(
            """
            INSERT INTO payments_localaccount
                (id, email, country, details_submitted, idempotency_key, created_at)
            SELECT 'acct_local_b' || g, 'bench' || g || '@example.com', 'US', true,
                   'bench-b-' || g, now()
            FROM generate_series(1, %s) g
            """,
            [n],
        )
        cursor.execute(
            f"""
            INSERT INTO accounts_seller ({", ".join(_seller_columns())})
            SELECT {", ".join(_seller_values())}
            FROM accounts_user u
            """  # noqa: S608 (our own column names)
        )
        # A platform account's balance is kept in its shards (docs/decisions/0004).
        processor = LedgerAccount.objects.create(kind="processor", currency="USD")
        LedgerBalanceShard.objects.create(
            account=processor, shard=0, balance_minor=100 * ENTRIES * n
        )
        cursor.execute(
            "INSERT INTO payments_ledgeraccount (seller_id, kind, currency, balance_minor)"
            " SELECT id, 'available', 'USD', %s FROM accounts_seller",
            [-100 * ENTRIES],
        )
        # ENTRIES transactions per seller, each moving 1.00 from the processor's cash
        # to the seller's available account.
        cursor.execute(
            """
            INSERT INTO payments_ledgertransaction
                (kind, idempotency_key, reference_type, reference_id, description, created_at)
            SELECT 'adjustment', 'bench:' || a.id || ':' || g, 'bench', a.id::text, '', now()
            FROM payments_ledgeraccount a CROSS JOIN generate_series(1, %s) g
            WHERE a.kind = 'available'
            """,
            [ENTRIES],
        )
        cursor.execute(
            """
            INSERT INTO payments_ledgerentry
                (transaction_id, account_id, amount_minor, currency, transaction_kind,
                 created_at)
            SELECT t.id, t.reference_id::bigint, -100, 'USD', t.kind, now()
            FROM payments_ledgertransaction t WHERE t.reference_type = 'bench'
            UNION ALL
            SELECT t.id, %s, 100, 'USD', t.kind, now()
            FROM payments_ledgertransaction t WHERE t.reference_type = 'bench'
            """,
            [processor.pk],
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE accounts_user, accounts_seller, payments_ledgeraccount,"
            " payments_ledgertransaction, payments_ledgerentry, payments_localaccount"
        )
    elapsed = time.perf_counter() - started
    print(f"built {n:,} sellers x {ENTRIES} entries in {elapsed:.1f} s", flush=True)
    return elapsed


def _required_columns(table: str) -> dict[str, str]:
    """The table's NOT NULL columns without a default, with their types."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL"
            " AND is_identity = 'NO'",
            [table],
        )
        return dict(cursor.fetchall())


def _filler(data_type: str) -> str:
    if data_type in ("boolean",):
        return "false"
    if data_type in ("integer", "bigint", "smallint"):
        return "0"
    if "timestamp" in data_type:
        return "now()"
    if data_type == "jsonb":
        return "'{}'::jsonb"
    return "''"


USER_VALUES = {
    "email": "'bench' || g || '@example.com'",
    "password": "'!'",
    "is_active": "true",
    "date_joined": "now()",
}
SELLER_VALUES = {
    "user_id": "u.id",
    "display_name": "'Bench ' || u.id",
    "slug": "'bench-' || u.id",
    "country": "'US'",
    "default_currency": "'USD'",
    "payout_account_id": "'acct_local_b' || substring(u.email from 'bench([0-9]+)@')",
    "payout_status": "'enabled'",
}


def _user_columns() -> list[str]:
    return list(_required_columns("accounts_user") | dict.fromkeys(USER_VALUES, ""))


def _user_values() -> list[str]:
    types = _required_columns("accounts_user")
    return [USER_VALUES.get(c) or _filler(types[c]) for c in _user_columns()]


def _seller_columns() -> list[str]:
    return list(_required_columns("accounts_seller") | dict.fromkeys(SELLER_VALUES, ""))


def _seller_values() -> list[str]:
    types = _required_columns("accounts_seller")
    return [SELLER_VALUES.get(c) or _filler(types[c]) for c in _seller_columns()]


def rows_left() -> dict[str, int]:
    """What a run's creation wrote, to compare two runs."""
    from django.db import connection

    queries = {
        "runs finished": "SELECT count(*) FROM payments_payoutrun WHERE finished_at IS NOT NULL"
        " AND chunks_done = chunks_total",
        "chunks done": "SELECT count(*) FROM payments_payoutrunchunk WHERE done_at IS NOT NULL",
        "payouts": "SELECT count(*) FROM payments_payout",
        "payouts scheduled": "SELECT count(*) FROM payments_payout WHERE status = 'scheduled'",
        "payout amounts": "SELECT coalesce(sum(amount_minor), 0) FROM payments_payout",
        "breakdown rows": "SELECT count(*) FROM payments_payoutentry",
        "breakdown amounts": "SELECT coalesce(sum(e.amount_minor), 0) FROM payments_payoutentry"
        " pe JOIN payments_ledgerentry e ON e.id = pe.entry_id",
        "payouts created (run)": "SELECT coalesce(sum(payouts_created), 0) FROM payments_payoutrun",
    }
    found = {}
    with connection.cursor() as cursor:
        for key, sql in queries.items():
            cursor.execute(sql)
            found[key] = int(cursor.fetchone()[0])
    return found


# --- Creation in two worker processes ---------------------------------------------------


def create(*, service: bool) -> dict[str, Any]:
    """Start a run and make its chunks in ``WORKERS`` spawned processes; returns the
    seconds, chunks, statements and the peak RSS (MB) of the busiest process."""
    import multiprocessing

    from django.db import connection

    connection.close()  # the children make their own
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS, initializer=_worker_init) as pool:
        pool.map(_warm, range(WORKERS * 2), chunksize=1)
        started = time.perf_counter()
        start = pool.apply(_service_start if service else _raw_start)
        work = _service_chunk if service else _raw_chunk
        results = pool.map(
            work, [(start["run"], k, start["now"]) for k in range(start["chunks"])], chunksize=1
        )
        seconds = time.perf_counter() - started
    rss: dict[int, int] = {start["pid"]: start["rss_kb"]}
    for result in results:
        rss[result["pid"]] = max(rss.get(result["pid"], 0), result["rss_kb"])
    return {
        "seconds": seconds,
        "chunks": start["chunks"],
        "statements": start["statements"] + sum(r["statements"] for r in results),
        "rss_mb": max(rss.values()) / 1024,
    }


def _worker_init() -> None:
    import django

    django.setup()
    import logging

    logging.disable(logging.INFO)
    # What the first chunk would otherwise import: a worker's start, not the run's work.
    import marketplace.celery  # noqa: F401
    import payments.payouts.runs
    import payments.tasks  # noqa: F401


def _warm(_: int) -> int:
    from django.db import connection

    connection.ensure_connection()
    time.sleep(0.2)  # so that both workers take one
    return os.getpid()


def _counted(work: Any) -> tuple[Any, int]:
    from django.db import connection

    counter: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        counter["n"] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        value = work()
    return value, counter["n"]


def _me(statements: int, **values: Any) -> dict[str, Any]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"pid": os.getpid(), "rss_kb": rss, "statements": statements, **values}


def _service_start() -> dict[str, Any]:
    from django.utils import timezone

    from payments.payouts.runs import payout_run_start

    now = timezone.now()
    run, statements = _counted(lambda: payout_run_start(now=now, fan_out=False))
    return _me(statements, run=run.pk, chunks=run.chunks_total, now=now.isoformat())


def _service_chunk(job: tuple[int, int, str]) -> dict[str, Any]:
    from datetime import datetime

    from payments.payouts.runs import payout_run_chunk_make

    run_id, number, now = job
    when = datetime.fromisoformat(now)
    report, statements = _counted(
        lambda: payout_run_chunk_make(run_id=run_id, number=number, now=when)
    )
    return _me(statements, made=sum(1 for plan in report.planned if plan.payout))


def _raw_start() -> dict[str, Any]:
    """The run row and its chunk rows: the same keyset ranges, in raw SQL."""
    from django.db import connection, transaction
    from django.utils import timezone

    def work() -> tuple[int, int]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_payoutrun (trigger, started_at, holds_released,"
                " payouts_created, skipped, chunks_total, chunks_done, sends_scheduled)"
                " VALUES ('schedule', now(), 0, 0, '[]', 0, 0, 0) RETURNING id"
            )
            run_id = cursor.fetchone()[0]
            # The service's ranges: no gaps, from 0, the last one unbounded.
            with_money = (
                "SELECT seller_id FROM payments_ledgeraccount WHERE kind = 'available'"
                " AND balance_minor < 0 AND seller_id > %s ORDER BY seller_id"
            )
            number, first, after = 0, 0, 0
            while True:
                cursor.execute(with_money + " OFFSET %s LIMIT 1", [after, CHUNK_SIZE - 1])
                last = cursor.fetchone()
                if last is not None:
                    cursor.execute(with_money + " LIMIT 1", [last[0]])
                    if cursor.fetchone() is None:
                        last = None  # nothing after it: this range is the last
                elif number == 0:
                    cursor.execute(with_money + " LIMIT 1", [after])
                    if cursor.fetchone() is None:
                        break  # no one has money: no chunk
                cursor.execute(
                    "INSERT INTO payments_payoutrunchunk (run_id, number, first_seller_id,"
                    " last_seller_id, payouts_created, skipped) VALUES (%s, %s, %s, %s, 0, '[]')",
                    [run_id, number, first, last[0] if last else None],
                )
                number += 1
                if last is None:
                    break
                first, after = last[0] + 1, last[0]
            cursor.execute(
                "UPDATE payments_payoutrun SET chunks_total = %s WHERE id = %s", [number, run_id]
            )
            return run_id, number

    (run_id, chunks), statements = _counted(work)
    return _me(statements, run=run_id, chunks=chunks, now=timezone.now().isoformat())


def _raw_chunk(job: tuple[int, int, str]) -> dict[str, Any]:
    """One chunk in one transaction, in raw SQL (see the module docstring)."""
    from django.db import connection, transaction
    from django.utils import timezone

    run_id, number, _ = job
    period = timezone.localdate().isoformat()

    def work() -> int:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, first_seller_id, coalesce(last_seller_id, 9223372036854775807)"
                " FROM payments_payoutrunchunk WHERE run_id = %s AND number = %s"
                " AND done_at IS NULL FOR UPDATE",
                [run_id, number],
            )
            chunk_id, first, last = cursor.fetchone()
            cursor.execute(
                "SELECT DISTINCT seller_id FROM payments_ledgeraccount WHERE kind = 'available'"
                " AND balance_minor < 0 AND seller_id BETWEEN %s AND %s ORDER BY 1",
                [first, last],
            )
            ids = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                "SELECT id FROM accounts_seller WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                [ids],
            )
            cursor.fetchall()
            cursor.execute(
                "SELECT a.seller_id, a.currency, a.balance_minor, s.payout_account_id,"
                " s.payout_status FROM payments_ledgeraccount a"
                " JOIN accounts_seller s ON s.id = a.seller_id"
                " WHERE a.kind = 'available' AND a.balance_minor < 0 AND a.seller_id = ANY(%s)",
                [ids],
            )
            accounts = cursor.fetchall()
            cursor.execute(
                "SELECT seller_id, frozen, minimums FROM payments_payoutpolicy"
                " WHERE seller_id IS NULL OR seller_id = ANY(%s)",
                [ids],
            )
            cursor.fetchall()
            cursor.execute(CLAIMED_SQL, [ids, ids])
            claimed = {(s, c): int(t) for s, c, t in cursor.fetchall()}
            sellers, currencies, amounts = [], [], []
            for seller_id, currency, balance, account, status in accounts:
                amount = -balance - claimed.get((seller_id, currency), 0)
                if amount > 0 and account and status == "enabled":
                    sellers.append(seller_id)
                    currencies.append(currency)
                    amounts.append(amount)
            cursor.execute(
                "INSERT INTO payments_payout (seller_id, currency, amount_minor, period,"
                " status, method, run_id, processor, processor_transfer_id,"
                " processor_payout_id, failure_reason, bank_reference, requires_approval,"
                " reserve_minor, attention_reason, bank_last4, clawed_back_minor, created_at)"
                " SELECT s, c, a, %s, 'scheduled', 'processor', %s, '', '', '', '', '', false,"
                " 0, '', '', 0, now() FROM unnest(%s::bigint[], %s::text[], %s::bigint[])"
                " AS t(s, c, a) ON CONFLICT (seller_id, currency, period) DO NOTHING"
                " RETURNING id",
                [period, run_id, sellers, currencies, amounts],
            )
            payout_ids = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                "INSERT INTO payments_payoutentry (payout_id, entry_id)"
                " SELECT p.id, e.id FROM payments_payout p"
                " JOIN payments_ledgeraccount a ON a.seller_id = p.seller_id"
                " AND a.currency = p.currency AND a.kind = 'available'"
                " JOIN payments_ledgerentry e ON e.account_id = a.id"
                " WHERE p.id = ANY(%s) AND e.transaction_kind <> ALL(%s) AND NOT EXISTS"
                " (SELECT 1 FROM payments_payoutentry x WHERE x.entry_id = e.id)",
                [payout_ids, list(PAYOUT_KINDS)],
            )
            cursor.execute(
                "UPDATE payments_payoutrunchunk SET done_at = now(), payouts_created = %s"
                " WHERE id = %s",
                [len(payout_ids), chunk_id],
            )
            cursor.execute(
                "UPDATE payments_payoutrun SET chunks_done = chunks_done + 1,"
                " payouts_created = payouts_created + %s,"
                " sends_scheduled = sends_scheduled + %s,"
                " finished_at = CASE WHEN chunks_done + 1 = chunks_total THEN now()"
                " ELSE finished_at END WHERE id = %s",
                [len(payout_ids), len(payout_ids), run_id],
            )
            return len(payout_ids)

    made, statements = _counted(work)
    return _me(statements, made=made)


CLAIMED_SQL = (
    "SELECT seller_id, currency, sum(amount_minor) FROM payments_payout"
    " WHERE seller_id = ANY(%s) AND status IN ('awaiting_approval', 'held', 'scheduled')"
    " GROUP BY 1, 2"
    " UNION ALL"
    " SELECT so.seller_id, r.currency, sum(rl.seller_amount_minor) FROM payments_refundline rl"
    " JOIN payments_refund r ON r.id = rl.refund_id"
    " JOIN marketplace_orderline ol ON ol.id = rl.order_line_id"
    " JOIN marketplace_sellerorder so ON so.id = ol.seller_order_id"
    " WHERE r.status = 'pending' AND so.seller_id = ANY(%s) AND so.released_at IS NOT NULL"
    " GROUP BY 1, 2"
)


# --- Sending on real Celery workers ------------------------------------------------------


def send(wanted: int) -> tuple[int, float, int]:
    """Queue the sends of the run's first ``wanted`` payouts and start ``WORKERS``
    Celery workers; returns how many payouts reached the bank after the first, in how
    many seconds, and how many were paid by then."""
    from django.db import connection
    from django.utils import timezone

    from payments.models import Payout
    from payments.payouts.runs import payout_sends_enqueue

    # The sample's send tasks, queued by the run's own service (the chunks' queued
    # publishing tasks for all the others are dropped: the sample is what is timed).
    flush_redis()
    sample_ids = list(
        Payout.objects.filter(status=Payout.Status.SCHEDULED)
        .order_by("pk")
        .values_list("pk", flat=True)[:wanted]
    )
    payout_sends_enqueue(payout_ids=sample_ids, first_slot=0, since=timezone.now())
    env = {**os.environ, **BENCH_ENV}
    env["DJANGO_SETTINGS_MODULE"] = "marketplace.settings"
    env["EMAIL_URL"] = "dummymail://"  # the emails are rendered, not sent
    # BENCH_WORKER_LOG=<file>: the workers' log (INFO), to see where their time goes.
    log_path = os.environ.get("BENCH_WORKER_LOG")
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "marketplace",
                "worker",
                "--pool",
                "solo",
                "--hostname",
                f"bench-payouts-{i}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO" if log_path else "WARNING",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i in range(WORKERS)
    ]
    at_bank = Payout.objects.filter(status__in=(Payout.Status.IN_TRANSIT, Payout.Status.PAID))
    # Timed from the first payout at the bank (the workers' start is not the run's).
    deadline = time.perf_counter() + max(180.0, wanted / 10)
    count, first, started = 0, 0, None
    try:
        while time.perf_counter() < deadline:
            count = at_bank.count()
            if started is None and count:
                started, first = time.perf_counter(), count
            if count >= wanted:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started if started else 0.0
        count -= first
        paid = Payout.objects.filter(status=Payout.Status.PAID).count()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        connection.close()
    print(f"sending: {count:,} more at the bank in {seconds:.1f} s after the first", flush=True)
    return count, seconds, paid


def flush_redis() -> None:
    """Empty the benchmark's own Redis databases (15: broker, 1: results)."""
    import redis

    for url in (BROKER_URL, RESULTS_URL):
        redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
