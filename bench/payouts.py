"""Benchmark: a full payout run with the local processor, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
        .venv/bin/python -m bench.payouts --sellers 1000 --entries 100

Builds N sellers whose available accounts hold M ledger entries each (posted
in bulk, as the posting service would leave them), then times
``run_payouts`` plus sending every payout (Celery eager, in-process), and
prints one table row: sellers, entries per seller, seconds, payouts per
second, and SQL statements per seller. The database is wiped first: never
point it at a database you care about.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="SQL statements by kind")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command

    from bench.sellers import bench_sellers

    logging.disable(logging.INFO)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.db import connection, transaction

    from marketplace.celery import app
    from payments.models import (
        LedgerAccount,
        Payout,
    )
    from payments.payouts import run_payouts

    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    app.conf.task_always_eager = True

    n, m = args.sellers, args.entries
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
    built = time.perf_counter() - started

    statements = 0
    by_kind: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        words = sql.split()
        table = next(
            (
                w.strip('"')
                for w in words
                if w.strip('"').startswith(("payments_", "accounts_", "marketplace_", "django_"))
            ),
            "",
        )
        by_kind[f"{words[0]} {table}".strip()] += 1
        return execute(sql, params, many, context)

    started = time.perf_counter()
    with connection.execute_wrapper(count):
        run_payouts(sellers=None)
    elapsed = time.perf_counter() - started
    paid = Payout.objects.filter(status="paid").count()
    print(
        f"| payout run | {n} sellers x {m} entries | {elapsed:.2f} s | "
        f"{paid / elapsed:.0f} payouts/s | {statements / n:.1f} SQL statements per seller | "
        f"paid {paid}/{n} | (set-up {built:.1f} s)"
    )
    if args.verbose:
        for kind, number in by_kind.most_common():
            print(f"  {number / n:6.2f} per seller  {kind}")


if __name__ == "__main__":
    main()
