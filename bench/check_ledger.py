"""Benchmark: ``check_ledger`` (``payments.checks.ledger_check``) over a million
ledger entries, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
        .venv/bin/python -m bench.check_ledger           # 1,000,000 entries
    ... python -m bench.check_ledger --quick             # 20,000 entries: a smoke run

The ledger is the dashboard benchmark's (``bench.dashboard``: its histories and
its loader, imported, not copied): about 200 sellers' sales, seller-borne fees,
hold releases, 3% of orders refunded with real order and refund rows, and daily
or weekly payouts with their breakdowns, written with ``COPY`` in one
transaction. The load is timed in three parts: the rows (``COPY`` and the
rest), the deferred balance checks of migration 0023's constraint trigger (fired
on purpose with ``SET CONSTRAINTS ALL IMMEDIATE`` just before the commit, where
they would fire anyway), and the commit. ``--no-balance-trigger`` disables the
trigger for the load, to measure what it costs. The tables are then vacuumed and
analysed, and ``ledger_check`` runs ``--runs`` (3) times after a warm-up run: the
row reports the median against a 60 s target, with the statements of one run,
and the benchmark fails if the load is not found consistent.
The database is wiped first: never point it at a database you care about.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

TARGET_S = 60.0
TRIGGER = "payments_ledgerentry_balanced"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--total", type=int, default=1_000_000, help="ledger entries in the database, at least"
    )
    parser.add_argument("--entries", type=int, default=100_000, help="on the first seller's")
    parser.add_argument("--other-sellers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="timed runs after a warm-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-balance-trigger",
        action="store_true",
        help="load with migration 0023's balance trigger disabled (to measure its cost)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 20,000 entries, 10 other sellers, 1 run"
    )
    args = parser.parse_args()
    if args.quick:
        args.total, args.entries, args.other_sellers, args.runs = 20_000, 5_000, 10, 1

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bench.dashboard import histories_for, load
    from bench.report import Row, emit
    from payments.checks import ledger_check
    from payments.models import LedgerEntry

    logging.disable(logging.INFO)
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    started = time.perf_counter()
    now = timezone.now()
    histories = histories_for(args, now)
    generated = time.perf_counter() - started

    trigger = "off" if args.no_balance_trigger else "on"
    with transaction.atomic():
        if args.no_balance_trigger:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE payments_ledgerentry DISABLE TRIGGER {TRIGGER}")
        started = time.perf_counter()
        load(histories, now=now, reserve_bps=0)
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred checks, now
        deferred = time.perf_counter() - started
        if args.no_balance_trigger:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE payments_ledgerentry ENABLE TRIGGER {TRIGGER}")
        started = time.perf_counter()
    committed = time.perf_counter() - started

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) accounts_seller, payments_ledgeraccount,"
            " payments_ledgertransaction, payments_ledgerentry, payments_payout,"
            " payments_payoutentry, payments_payoutpolicy, payments_paymentattempt,"
            " payments_dispute, payments_disputeline, marketplace_order,"
            " marketplace_sellerorder, marketplace_orderline, payments_refund,"
            " payments_refundline"
        )
    analysed = time.perf_counter() - started
    entries = LedgerEntry.objects.count()
    print(
        f"Loaded {entries:,} entries of {len(histories)} sellers: histories {generated:.1f} s,"
        f" rows {inserted:.1f} s, balance trigger ({trigger}) checks {deferred:.1f} s,"
        f" commit {committed:.1f} s; vacuum and analyse {analysed:.1f} s.",
        flush=True,
    )

    report = ledger_check()  # warm-up (and the proof that the load is consistent)
    if not report.ok:
        for problem in report.problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(f"Bad load: check_ledger found {len(report.problems)} problem(s).")
    seconds: list[float] = []
    statements = 0
    for _ in range(args.runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            report = ledger_check()
            seconds.append(time.perf_counter() - started)
        statements = len(captured.captured_queries)
        assert report.ok
    median = statistics.median(seconds)
    load_average = os.getloadavg()[0]
    print(
        f"ledger_check: {report.transactions:,} transactions, {report.entries:,} entries,"
        f" {report.accounts:,} accounts, {report.orders:,} paid orders;"
        f" runs {', '.join(f'{s:.2f}' for s in seconds)} s; {statements} statements a run;"
        f" load average {load_average:.2f}",
        flush=True,
    )
    emit(
        Row(
            what="check_ledger",
            work=f"{entries:,} entries, {report.transactions:,} transactions",
            time=f"median {median:.2f} s of {args.runs}",
            rate=f"{entries / median:,.0f} entries/s",
            statements=str(statements),
            against=f"{TARGET_S:.0f} s",
            ratio=f"{median / TARGET_S:.2f}",
            target="under 1.00",
            met=median < TARGET_S,
        )
    )
    emit(
        Row(
            what=f"COPY load, balance trigger {trigger}",
            work=f"{entries:,} entries",
            time=f"{inserted + deferred + committed:.1f} s",
            rate=f"{entries / (inserted + deferred + committed):,.0f} entries/s",
            statements="-",
            against="rows alone",
            ratio=f"{(inserted + deferred + committed) / inserted:.2f}",
            target="information",
            met=True,
        )
    )


if __name__ == "__main__":
    main()
