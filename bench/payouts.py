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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sellers", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=100)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    from django.conf import settings
    from django.core.management import call_command

    logging.disable(logging.INFO)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.db import connection, transaction

    from accounts.models import Seller, User
    from marketplace.celery import app
    from payments.models import (
        LedgerAccount,
        LedgerEntry,
        LedgerTransaction,
        LocalAccount,
        Payout,
    )
    from payments.payouts import run_payouts

    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("flush", interactive=False, verbosity=0)
    app.conf.task_always_eager = True

    n, m = args.sellers, args.entries
    started = time.perf_counter()
    with transaction.atomic():
        users = User.objects.bulk_create(
            User(email=f"bench{i}@example.com", password="!") for i in range(n)
        )
        LocalAccount.objects.bulk_create(
            LocalAccount(
                id=f"acct_local_b{i}",
                email=f"bench{i}@example.com",
                country="US",
                details_submitted=True,
                idempotency_key=f"bench-{i}",
            )
            for i in range(n)
        )
        sellers = Seller.objects.bulk_create(
            Seller(
                user=user,
                display_name=f"Bench {i}",
                slug=f"bench-{i}",
                country="US",
                default_currency="USD",
                payout_account_id=f"acct_local_b{i}",
                payout_status=Seller.PayoutStatus.ENABLED,
            )
            for i, user in enumerate(users)
        )
        processor = LedgerAccount.objects.create(kind="processor", currency="USD")
        accounts = LedgerAccount.objects.bulk_create(
            LedgerAccount(seller=s, kind="available", currency="USD", balance_minor=-100 * m)
            for s in sellers
        )
        processor.balance_minor = 100 * m * n
        processor.save()
        txns = LedgerTransaction.objects.bulk_create(
            LedgerTransaction(
                kind="adjustment",
                idempotency_key=f"bench:{a.pk}:{j}",
                reference_type="bench",
                reference_id=str(a.pk),
            )
            for a in accounts
            for j in range(m)
        )
        entries = []
        for index, txn in enumerate(txns):
            account = accounts[index // m]
            entries.append(
                LedgerEntry(transaction=txn, account=account, amount_minor=-100, currency="USD")
            )
            entries.append(
                LedgerEntry(transaction=txn, account=processor, amount_minor=100, currency="USD")
            )
        LedgerEntry.objects.bulk_create(entries, batch_size=5000)
    built = time.perf_counter() - started

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
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


if __name__ == "__main__":
    main()
