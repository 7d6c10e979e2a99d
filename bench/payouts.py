"""Benchmark: a full payout run with the local processor, against raw SQL doing the same
reads and writes, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench_payouts \\
        .venv/bin/python -m bench.payouts            # the issue's size: 10,000 x 100
    ... -m bench.payouts --quick                      # a smoke size: 200 x 10

Builds N sellers whose available accounts hold M ledger entries each (posted in
bulk, as the posting service would leave them), then times ``run_payouts`` plus
sending every payout (Celery eager, in process: ``payout_send`` through the local
processor, its ``payout.paid`` event through the webhook pipeline, the emails to
the locmem backend), counting SQL statements.

The limit it is measured against is raw SQL (psycopg through Django's cursor, no
ORM, no Celery) writing exactly the same rows, in the same per-seller transactions
and order: the payout and its breakdown (under the available account's lock, after
reading what open payouts and pending refunds claim); the ``payout:<id>:sent``
ledger transaction with its entries and balances (the in-transit account made on
first use); the local processor's transfer, payout and event; the stored webhook
event; the ``payout:<id>:paid`` transaction with the payout and event updates;
the transfer and payout ids on the payout. It also makes the reads each step
needs as a task of its own (the event by id, the webhook event and the payout
under lock, the endpoints for the two announcements, the two emails' payout and
address) but none the service makes twice. The two runs start from the same data:
the database is wiped and the data set built again before each (building it is
fast and leaves no trace of the first run), and the rows each run leaves are
compared table by table. The row's ratio is the service's rate over the raw rate
(target: at least a quarter).

A second row runs the service alone at K sellers with 10, 100 and 1,000 entries
each: its statements per seller must be the same at every size.

The database is wiped: never point it at a database you care about. Timings are
wall clock and other work on the machine inflates them (the load average is
printed); the ratio is measured in the same run on the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ISSUE_SIZE = (10_000, 100)
QUICK_SIZE = (200, 10)
ENTRY_SIZES = (10, 100, 1000)
TARGET_RATIO = 0.25
PAYOUT_KINDS = ("payout_sent", "payout_paid", "payout_failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=ISSUE_SIZE[0])
    parser.add_argument("--entries", type=int, default=ISSUE_SIZE[1])
    parser.add_argument(
        "--constant-sellers", type=int, default=300, help="sellers for the 10/100/1,000 check"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke size: 200 x 10, and 50 for the check"
    )
    parser.add_argument("--verbose", action="store_true", help="SQL statements by kind")
    args = parser.parse_args()
    if args.quick:
        args.sellers, args.entries = QUICK_SIZE
        args.constant_sellers = 50

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench.report import Row, emit
    from marketplace.celery import app

    logging.disable(logging.INFO)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    app.conf.task_always_eager = True

    n, m = args.sellers, args.entries
    load_before = os.getloadavg()[0]

    built = build(n, m)
    raw_time, raw_counts = timed(raw_payout_run)
    raw_rows = rows_left()
    build(n, m)
    service_time, service_counts = timed(service_payout_run)
    service_rows = rows_left()
    load_after = os.getloadavg()[0]

    same_rows = raw_rows == service_rows
    if not same_rows:
        print("The two runs left different rows (table: raw, service):")
        for key in sorted(set(raw_rows) | set(service_rows)):
            if raw_rows.get(key) != service_rows.get(key):
                print(f"  {key}: {raw_rows.get(key)}, {service_rows.get(key)}")
    paid = service_rows.get("payments_payout paid", 0)
    raw_rate, service_rate = n / raw_time, n / service_time
    ratio = service_rate / raw_rate
    service_statements = sum(service_counts.values()) / n
    raw_statements = sum(raw_counts.values()) / n
    emit(
        Row(
            what="payout run, local processor",
            work=f"{n:,} sellers x {m} entries (paid {paid:,}; set-up {built:.0f} s)",
            time=(
                f"{service_time:.1f} s, raw SQL {raw_time:.1f} s "
                f"(load avg {load_before:.2f} then {load_after:.2f})"
            ),
            rate=f"{service_rate:.1f} payouts/s, raw SQL {raw_rate:.1f}",
            statements=f"{service_statements:.1f} per seller, raw SQL {raw_statements:.1f}",
            against="raw SQL: same rows, same per-seller transactions"
            + ("" if same_rows else " (ROWS DIFFER)"),
            ratio=f"{ratio:.2f} of the raw rate",
            target=f"at least {TARGET_RATIO} of the raw rate",
            met=same_rows and paid == n and ratio >= TARGET_RATIO,
        )
    )
    if args.verbose:
        print_by_kind("service", service_counts, n)
        print_by_kind("raw SQL", raw_counts, n)

    k = args.constant_sellers
    times, per_seller = [], []
    for entries in ENTRY_SIZES:
        build(k, entries)
        elapsed, counts = timed(service_payout_run)
        times.append(elapsed)
        per_seller.append(sum(counts.values()) / k)
    constant = len(set(per_seller)) == 1
    emit(
        Row(
            what="payout run: statements as entries grow",
            work=f"{k:,} sellers x {'/'.join(f'{e:,}' for e in ENTRY_SIZES)} entries",
            time="/".join(f"{t:.1f}" for t in times) + f" s (load avg {os.getloadavg()[0]:.2f})",
            rate="/".join(f"{k / t:.1f}" for t in times) + " payouts/s",
            statements="/".join(f"{s:.2f}" for s in per_seller) + " per seller",
            against=f"the same run at {ENTRY_SIZES[0]} entries per seller",
            ratio=f"{max(per_seller) / min(per_seller):.2f} of the statements",
            target="statements per seller constant",
            met=constant,
        )
    )


# --- The data set -------------------------------------------------------------------


def build(n: int, m: int) -> float:
    """Wipe the database and build ``n`` sellers with ``m`` available entries each;
    returns the seconds it took."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from bench.sellers import bench_sellers
    from payments.models import LedgerAccount

    call_command("flush", interactive=False, verbosity=0)
    started = time.perf_counter()
    with transaction.atomic():
        _, sellers = bench_sellers(n, tag="b")
        processor = LedgerAccount.objects.create(
            kind="processor", currency="USD", balance_minor=100 * m * n
        )
        LedgerAccount.objects.bulk_create(
            LedgerAccount(seller=s, kind="available", currency="USD", balance_minor=-100 * m)
            for s in sellers
        )
        # M transactions per seller, each moving 1.00 from the processor's cash to
        # the seller's available account, written by the database itself.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO payments_ledgertransaction
                    (kind, idempotency_key, reference_type, reference_id, description, created_at)
                SELECT 'adjustment', 'bench:' || a.id || ':' || g, 'bench', a.id::text, '', now()
                FROM payments_ledgeraccount a CROSS JOIN generate_series(1, %s) g
                WHERE a.kind = 'available'
                """,
                [m],
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
            # Statistics for the tables just loaded only: an ANALYZE of the empty
            # payout tables would record them as empty, and the foreign-key
            # checks planned from that (cached per connection) scan them in full.
            cursor.execute(
                "ANALYZE accounts_user, accounts_seller, payments_ledgeraccount,"
                " payments_ledgertransaction, payments_ledgerentry, payments_localaccount"
            )
    return time.perf_counter() - started


def rows_left() -> dict[str, int]:
    """What a run wrote, to compare two runs: rows per table, payouts and webhook events
    per status, balances per kind of account."""
    from django.db import connection

    tables = (
        "payments_payoutrun",
        "payments_payout",
        "payments_payoutentry",
        "payments_ledgertransaction",
        "payments_ledgerentry",
        "payments_ledgeraccount",
        "payments_localtransfer",
        "payments_localpayout",
        "payments_localevent",
        "payments_webhookevent",
    )
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our own names)
            found[table] = cursor.fetchone()[0]
        for query in (
            "SELECT 'payments_payout ' || status, count(*) FROM payments_payout GROUP BY 1",
            "SELECT 'payments_webhookevent ' || status, count(*) FROM payments_webhookevent"
            " GROUP BY 1",
            "SELECT 'balance ' || kind, sum(balance_minor) FROM payments_ledgeraccount GROUP BY 1",
            "SELECT 'entries ' || transaction_kind, sum(amount_minor) FROM payments_ledgerentry"
            " GROUP BY 1",
        ):
            cursor.execute(query)
            found.update({key: int(value) for key, value in cursor.fetchall()})
    return found


# --- Timing and counting ------------------------------------------------------------


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count the SQL statements run on the default connection, by kind and table."""
    from django.db import connection

    by_kind: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        words = sql.split()
        table = next(
            (
                w.strip('"')
                for w in words
                if w.strip('"(').startswith(("payments_", "accounts_", "marketplace_", "django_"))
            ),
            "",
        )
        by_kind[f"{words[0].strip('(')} {table.strip('(')}".strip()] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield by_kind


def timed(run: Callable[[], None]) -> tuple[float, Counter[str]]:
    with counting() as counts:
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
    return elapsed, counts


def print_by_kind(what: str, counts: Counter[str], n: int) -> None:
    print(f"{what}: {sum(counts.values()) / n:.2f} statements per seller")
    for kind, number in counts.most_common():
        print(f"  {number / n:6.2f} per seller  {kind}")


# --- The two runs -------------------------------------------------------------------


def service_payout_run() -> None:
    from payments.payouts import run_payouts

    run_payouts(sellers=None)


def raw_payout_run() -> None:
    """What ``run_payouts`` and ``payout_send`` write, in raw SQL (see the docstring)."""
    from django.db import connection, transaction
    from django.utils import timezone

    period = timezone.localdate().isoformat()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_payoutrun (trigger, started_at, holds_released,"
            " payouts_created, skipped) VALUES ('schedule', now(), 0, 0, '[]') RETURNING id"
        )
        run_id = cursor.fetchone()[0]
        # The plan: every seller's available balance and what is claimed from it.
        cursor.execute(
            "SELECT a.id, a.seller_id, a.currency, s.payout_account_id"
            " FROM payments_ledgeraccount a JOIN accounts_seller s ON s.id = a.seller_id"
            " WHERE a.kind = 'available' AND a.balance_minor < 0"
            " AND s.payout_status = 'enabled' ORDER BY a.seller_id, a.currency"
        )
        accounts = cursor.fetchall()
        seller_ids = [seller_id for _, seller_id, _, _ in accounts]
        cursor.execute(CLAIMED_SQL.format(sellers="= ANY(%s)"), [seller_ids, seller_ids])
        cursor.fetchall()
        created = 0
        for account_id, seller_id, currency, destination in accounts:
            with transaction.atomic():  # the payout and its breakdown
                cursor.execute(
                    "SELECT balance_minor FROM payments_ledgeraccount WHERE id = %s FOR UPDATE",
                    [account_id],
                )
                balance = cursor.fetchone()[0]
                cursor.execute(CLAIMED_SQL.format(sellers="= %s"), [seller_id, seller_id])
                amount = -balance - sum(total for _, _, total in cursor.fetchall())
                if amount <= 0:
                    continue
                cursor.execute(
                    "INSERT INTO payments_payout (seller_id, currency, amount_minor, period,"
                    " status, method, run_id, processor, processor_transfer_id,"
                    " processor_payout_id, failure_reason, bank_reference, requires_approval,"
                    " reserve_minor, attention_reason, clawed_back_minor, created_at)"
                    " VALUES (%s, %s, %s, %s, 'scheduled',"
                    " 'processor', %s, '', '', '', '', '', false, 0, '', 0, now()) RETURNING id",
                    [seller_id, currency, amount, period, run_id],
                )
                payout_id = cursor.fetchone()[0]
                cursor.execute(
                    "INSERT INTO payments_payoutentry (payout_id, entry_id)"
                    " SELECT %s, e.id FROM payments_ledgerentry e WHERE e.account_id = %s"
                    " AND e.transaction_kind <> ALL(%s) AND NOT EXISTS"
                    " (SELECT 1 FROM payments_payoutentry p WHERE p.entry_id = e.id)",
                    [payout_id, account_id, list(PAYOUT_KINDS)],
                )
            created += 1
            raw_payout_send(cursor, payout_id, seller_id, currency, amount, destination)
            cursor.execute(NOTIFY_SQL, [payout_id])  # the "sent" email
            cursor.fetchall()
        cursor.execute(
            "UPDATE payments_payoutrun SET finished_at = now(), payouts_created = %s WHERE id = %s",
            [created, run_id],
        )


def raw_payout_send(
    cursor: Any, payout_id: int, seller_id: int, currency: str, amount: int, destination: str
) -> None:
    from django.db import transaction

    from payments.models.local import local_id

    with transaction.atomic():  # available -> in transit, then "sending"
        cursor.execute(
            "SELECT p.status, s.payout_account_id FROM payments_payout p"
            " JOIN accounts_seller s ON s.id = p.seller_id WHERE p.id = %s FOR UPDATE",
            [payout_id],
        )
        cursor.fetchone()
        cursor.execute(
            "SELECT kind, id FROM payments_ledgeraccount WHERE seller_id = %s"
            " AND currency = %s AND kind IN ('available', 'in_transit')",
            [seller_id, currency],
        )
        ids = dict(cursor.fetchall())
        if "in_transit" not in ids:
            cursor.execute(
                "INSERT INTO payments_ledgeraccount (seller_id, kind, currency, balance_minor)"
                " VALUES (%s, 'in_transit', %s, 0) RETURNING id",
                [seller_id, currency],
            )
            ids["in_transit"] = cursor.fetchone()[0]
        raw_ledger_post(
            cursor,
            "payout_sent",
            f"payout:{payout_id}:sent",
            payout_id,
            currency,
            [(ids["available"], amount), (ids["in_transit"], -amount)],
        )
        cursor.execute(
            "UPDATE payments_payout SET status = 'sending', sent_at = now(), processor = 'local'"
            " WHERE id = %s",
            [payout_id],
        )
    # The local processor: a transfer, a payout and its event, each committed.
    metadata = json.dumps({"payout_id": str(payout_id), "seller_id": str(seller_id)})
    cursor.execute(
        "SELECT 1 FROM payments_localaccount WHERE id = %s AND details_submitted LIMIT 1",
        [destination],
    )
    cursor.fetchone()
    transfer_id = local_id("tr")
    cursor.execute(
        "INSERT INTO payments_localtransfer (id, amount_minor, currency, destination,"
        " transfer_group, source_charge, reversed_minor, metadata, idempotency_key, created_at)"
        " VALUES (%s, %s, %s, %s, %s, '', 0, %s::jsonb, %s, now())",
        [
            transfer_id,
            amount,
            currency,
            destination,
            f"payout-{payout_id}",
            metadata,
            f"payout-{payout_id}-transfer",
        ],
    )
    processor_payout_id = local_id("po")
    cursor.execute(
        "INSERT INTO payments_localpayout (id, account, amount_minor, currency, status,"
        " metadata, idempotency_key, created_at)"
        " VALUES (%s, %s, %s, %s, 'paid', %s::jsonb, %s, now())",
        [
            processor_payout_id,
            destination,
            amount,
            currency,
            metadata,
            f"payout-{payout_id}-payout",
        ],
    )
    event_id = local_id("evt")
    data = {
        "object": "payout",
        "id": processor_payout_id,
        "status": "paid",
        "amount": amount,
        "currency": currency.lower(),
        "metadata": json.loads(metadata),
    }
    cursor.execute(
        "INSERT INTO payments_localevent (id, type, account, data, created_at)"
        " VALUES (%s, 'payout.paid', %s, %s::jsonb, now())",
        [event_id, destination, json.dumps(data)],
    )
    # Its delivery: read the event, store it as a webhook event.
    cursor.execute("SELECT type, account, data FROM payments_localevent WHERE id = %s", [event_id])
    cursor.fetchone()
    payload = json.dumps(
        {"id": event_id, "object": "event", "type": "payout.paid", "data": {"object": data}}
    )
    cursor.execute(
        "INSERT INTO payments_webhookevent (processor, event_id, type, account, livemode,"
        " payload, headers, status, attempts, last_error, received_at)"
        " VALUES ('local', %s, 'payout.paid', %s, false, %s, %s::jsonb, 'received', 0, '',"
        " now()) RETURNING id",
        [event_id, destination, payload, json.dumps({"Content-Type": "application/json"})],
    )
    webhook_event_id = cursor.fetchone()[0]
    with transaction.atomic():  # its processing: in transit -> paid out
        cursor.execute(
            "SELECT status, payload FROM payments_webhookevent WHERE id = %s FOR UPDATE",
            [webhook_event_id],
        )
        cursor.fetchone()
        cursor.execute(
            "SELECT p.status FROM payments_payout p JOIN accounts_seller s ON s.id = p.seller_id"
            " WHERE p.id = %s FOR UPDATE",
            [payout_id],
        )
        cursor.fetchone()
        cursor.execute(
            "SELECT kind, id FROM payments_ledgeraccount WHERE currency = %s AND"
            " ((seller_id = %s AND kind = 'in_transit') OR (seller_id IS NULL AND"
            " kind = 'processor'))",
            [currency, seller_id],
        )
        ids = dict(cursor.fetchall())
        raw_ledger_post(
            cursor,
            "payout_paid",
            f"payout:{payout_id}:paid",
            payout_id,
            currency,
            [(ids["in_transit"], amount), (ids["processor"], -amount)],
        )
        cursor.execute(
            "UPDATE payments_payout SET status = 'paid', paid_at = now() WHERE id = %s",
            [payout_id],
        )
        cursor.execute(ENDPOINTS_SQL)  # the "payout.paid" announcement
        cursor.fetchall()
        cursor.execute(
            "UPDATE payments_webhookevent SET status = 'processed', attempts = attempts + 1,"
            " last_error = '', processed_at = now() WHERE id = %s",
            [webhook_event_id],
        )
    cursor.execute(NOTIFY_SQL, [payout_id])  # the "paid" email
    cursor.fetchall()
    with transaction.atomic():  # the processor's ids on the payout
        cursor.execute(
            "UPDATE payments_payout SET processor_transfer_id = %s, processor_payout_id = %s,"
            " failure_reason = '', status = CASE WHEN status = 'sending' THEN 'in_transit'"
            " ELSE status END WHERE id = %s RETURNING status",
            [transfer_id, processor_payout_id, payout_id],
        )
        cursor.fetchone()
        cursor.execute(ENDPOINTS_SQL)  # the "payout.sent" announcement
        cursor.fetchall()


def raw_ledger_post(
    cursor: Any,
    kind: str,
    key: str,
    payout_id: int,
    currency: str,
    postings: list[tuple[int, int]],
) -> None:
    """A ledger transaction, its entries, the ordered account locks, the balances."""
    cursor.execute(
        "INSERT INTO payments_ledgertransaction (kind, idempotency_key, reference_type,"
        " reference_id, description, created_at) VALUES (%s, %s, 'payout', %s, %s, now())"
        " RETURNING id",
        [kind, key, str(payout_id), f"Payout #{payout_id} {kind.split('_')[1]}"],
    )
    txn_id = cursor.fetchone()[0]
    (first, first_amount), (second, second_amount) = postings
    cursor.execute(
        "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor, currency,"
        " transaction_kind, created_at) VALUES (%s, %s, %s, %s, %s, now()),"
        " (%s, %s, %s, %s, %s, now())",
        [
            *(txn_id, first, first_amount, currency, kind),
            *(txn_id, second, second_amount, currency, kind),
        ],
    )
    cursor.execute(
        "SELECT id FROM payments_ledgeraccount WHERE id IN (%s, %s) ORDER BY id FOR UPDATE",
        [first, second],
    )
    cursor.fetchall()
    cursor.execute(
        "UPDATE payments_ledgeraccount SET balance_minor = balance_minor"
        " + CASE WHEN id = %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
        [first, first_amount, second_amount, first, second],
    )


CLAIMED_SQL = (
    "SELECT seller_id, currency, sum(amount_minor) FROM payments_payout"
    " WHERE seller_id {sellers} AND status IN ('awaiting_approval', 'held', 'scheduled')"
    " GROUP BY 1, 2"
    " UNION ALL"
    " SELECT so.seller_id, r.currency, sum(rl.seller_amount_minor) FROM payments_refundline rl"
    " JOIN payments_refund r ON r.id = rl.refund_id"
    " JOIN marketplace_orderline ol ON ol.id = rl.order_line_id"
    " JOIN marketplace_sellerorder so ON so.id = ol.seller_order_id"
    " WHERE r.status = 'pending' AND so.seller_id {sellers} AND so.released_at IS NOT NULL"
    " GROUP BY 1, 2"
)
ENDPOINTS_SQL = (
    "SELECT e.id, e.seller_id, e.events FROM payments_webhookendpoint e"
    " JOIN accounts_user u ON u.id = e.owner_id WHERE e.is_active AND u.is_active"
)
NOTIFY_SQL = (
    "SELECT p.amount_minor, p.currency, p.status, u.email FROM payments_payout p"
    " JOIN accounts_seller s ON s.id = p.seller_id JOIN accounts_user u ON u.id = s.user_id"
    " WHERE p.id = %s"
)


if __name__ == "__main__":
    main()
