"""Benchmark: the seller dashboard (``/sell/``) of a seller with a long ledger, on the
configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
        .venv/bin/python -m bench.dashboard --entries 100000

Builds one seller (payouts enabled, a 10% rolling reserve so the reserve query
runs too) whose accounts hold N ledger entries spread over the last 400 days, as
the posting service would leave them: sales credited to pending, seller-borne
processor fees, hold releases (pending to available) after 7 days, a few
refunds, and a payout every day (available to in transit, then paid two days
later). Other sellers get a smaller history of the same shape (by default
100,000 entries over 50 sellers, paid weekly), so the seller's rows are not
the whole table; everything is inserted in time order, with ``bulk_create``
and explicit ``created_at``s, then proven balanced, vacuumed and analysed.

Then it logs in as the seller and GETs ``/sell/`` through Django's test
client (DEBUG off), once to warm up and then K times. The client calls the
WSGI handler in process, so each timing is server time (middleware, view, SQL,
template) with no network. Prints the ledger's size and the load time; the
median, p95 and maximum request time against the 200 ms target (a PASS or
OVER line: figures, not a test); SQL statements, SQL time and this process's
CPU time per request; and the three slowest statements with the code that ran
them. ``--verbose`` adds EXPLAIN ANALYZE of the slowest. Timings are wall
clock: other work on the machine inflates them, so the load average is
printed too. The database is wiped first: never point it at a database you
care about.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

TARGET_MS = 200
DAYS = 400
HOLD = timedelta(days=7)
IN_TRANSIT = timedelta(days=2)
REFUND_RATE = 0.03
COMMISSION_BPS = 1000
SELLER_KINDS = ("pending", "available", "in_transit")
BATCH = 2000  # transactions per bulk insert (their entries go in the same round)


# --- The history of one seller, in plain Python -----------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One ledger transaction to post: postings are (account kind, signed amount); the
    seller-side kinds are this seller's accounts, the others the platform's."""

    at: datetime
    kind: str
    reference_type: str
    reference_id: int  # an order number, or for payouts the index in History.payouts
    postings: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PlannedPayout:
    day: datetime
    amount: int
    paid_at: datetime | None  # None: still in transit


@dataclass
class History:
    events: list[Event] = field(default_factory=list)
    payouts: list[PlannedPayout] = field(default_factory=list)

    def seller_entries(self) -> Counter[str]:
        """Entries on the seller's own accounts, by transaction kind."""
        counts: Counter[str] = Counter()
        for event in self.events:
            counts[event.kind] += sum(1 for kind, _ in event.postings if kind in SELLER_KINDS)
        return counts


def seller_history(
    seed: int, *, orders: int, first_order: int, now: datetime, payout_every: int
) -> History:
    """``orders`` sales spread over the last DAYS days and what follows from them, and a
    payout of the available balance every ``payout_every`` days. Deterministic per seed."""
    rng = random.Random(seed)
    start = now - timedelta(days=DAYS)
    history = History()
    events = history.events
    for number in range(first_order, first_order + orders):
        sold = start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 60))
        total = rng.randint(500, 20_000)
        commission = total * COMMISSION_BPS // 10_000
        share = total - commission
        fee = round(total * 0.029) + 30
        events.append(
            Event(
                sold,
                "payment_captured",
                "order",
                number,
                (("processor", total), ("pending", -share), ("commission", -commission)),
            )
        )
        fee_at = sold + timedelta(seconds=2)
        events.append(
            Event(fee_at, "processor_fee", "order", number, (("processor", -fee), ("pending", fee)))
        )
        still_pending = fee - share  # what this order leaves on the pending account
        released = sold + HOLD
        if rng.random() < REFUND_RATE:
            refunded = sold + timedelta(seconds=rng.uniform(3600, 20 * 86400))
            if refunded < now:
                account = "pending" if refunded < released else "available"
                if account == "pending":
                    still_pending += share
                events.append(
                    Event(
                        refunded,
                        "refund",
                        "refund",
                        number,
                        (("processor", -total), (account, share), ("commission", commission)),
                    )
                )
        if released < now and still_pending:
            events.append(
                Event(
                    released,
                    "hold_released",
                    "seller_order",
                    number,
                    (("pending", -still_pending), ("available", still_pending)),
                )
            )
    events.sort(key=lambda e: e.at)

    # Walk the days, paying out what is available at 00:30 (what the payout run does).
    available = 0  # the account's balance: negative is owed to the seller
    position = 0
    day = start.replace(hour=0, minute=30, second=0, microsecond=0) + timedelta(days=1)
    payout_events: list[Event] = []
    while day < now:
        while position < len(events) and events[position].at < day:
            available += sum(a for kind, a in events[position].postings if kind == "available")
            position += 1
        if -available >= 100:
            amount = -available
            paid_at = day + IN_TRANSIT if day + IN_TRANSIT < now else None
            index = len(history.payouts)
            history.payouts.append(PlannedPayout(day, amount, paid_at))
            payout_events.append(
                Event(
                    day,
                    "payout_sent",
                    "payout",
                    index,
                    (("available", amount), ("in_transit", -amount)),
                )
            )
            if paid_at is not None:
                payout_events.append(
                    Event(
                        paid_at,
                        "payout_paid",
                        "payout",
                        index,
                        (("in_transit", amount), ("processor", -amount)),
                    )
                )
            available += amount
        day += timedelta(days=payout_every)
    events.extend(payout_events)
    events.sort(key=lambda e: e.at)
    return history


def history_of_size(
    seed: int, *, entries: int, first_order: int, now: datetime, payout_every: int
) -> History:
    """A history with about ``entries`` entries on the seller's accounts: the number of
    orders is corrected a few times from the entries a try produced."""
    orders = max(1, entries // 4)
    history = seller_history(
        seed, orders=orders, first_order=first_order, now=now, payout_every=payout_every
    )
    for _ in range(4):
        counts = history.seller_entries()
        got = sum(counts.values())
        payout_entries = counts["payout_sent"] + counts["payout_paid"]
        per_order = max((got - payout_entries) / orders, 1.0)
        change = round((entries - got) / per_order)
        if change == 0:
            break
        orders = max(1, orders + change)
        history = seller_history(
            seed, orders=orders, first_order=first_order, now=now, payout_every=payout_every
        )
    return history


@contextmanager
def explicit_created_at(*models: type) -> Iterator[None]:
    """Let ``bulk_create`` keep the ``created_at`` we set: ``auto_now_add`` would
    overwrite it with the current time."""
    fields = [model._meta.get_field("created_at") for model in models]
    for f in fields:
        f.auto_now_add = False
    try:
        yield
    finally:
        for f in fields:
            f.auto_now_add = True


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: object
    ms: float
    origin: str  # the project code that ran it


PROJECT = Path(__file__).resolve().parent.parent
APPS = tuple(f"{PROJECT / app}{os.sep}" for app in ("accounts", "marketplace", "payments"))


def caller() -> str:
    """Where a statement comes from: the innermost frame in the project's apps."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(APPS):
            where = Path(code.co_filename).relative_to(PROJECT)
            return f"{where}:{frame.f_lineno} {code.co_name}()"
        frame = frame.f_back
    return "Django (session, user)"


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="on the seller's accounts")
    parser.add_argument("--other-sellers", type=int, default=50)
    parser.add_argument(
        "--other-entries", type=int, default=100_000, help="spread over the other sellers"
    )
    parser.add_argument("--requests", type=int, default=20, help="timed GETs after a warm-up")
    parser.add_argument(
        "--reserve-bps", type=int, default=1000, help="the seller's rolling reserve; 0 for none"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--verbose", action="store_true", help="EXPLAIN ANALYZE of the slowest statement"
    )
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging
    import warnings

    from django.conf import settings
    from django.core.management import call_command

    from bench.sellers import bench_sellers

    logging.disable(logging.INFO)
    # whitenoise looks for STATIC_ROOT, which only `collectstatic` creates
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    settings.DEBUG = False  # as in production: no template debugging, no query log
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from payments.models import (
        CommissionRule,
        LedgerAccount,
        LedgerEntry,
        LedgerTransaction,
        Payout,
        PayoutPolicy,
    )

    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    # --- The histories (the seller is number 0) ---------------------------------------
    started = time.perf_counter()
    now = timezone.now()
    histories = [
        history_of_size(args.seed, entries=args.entries, first_order=1, now=now, payout_every=1)
    ]
    if args.other_sellers:
        each = args.other_entries // args.other_sellers
        for i in range(1, args.other_sellers + 1):
            histories.append(
                history_of_size(
                    args.seed + i,
                    entries=each,
                    first_order=i * 1_000_000 + 1,
                    now=now,
                    payout_every=7,
                )
            )
    generated = time.perf_counter() - started

    # --- Sellers, accounts, payouts, then every transaction in time order -------------
    started = time.perf_counter()
    with transaction.atomic(), explicit_created_at(LedgerTransaction, LedgerEntry, Payout):
        n = len(histories)
        users, sellers = bench_sellers(n, tag="d")
        seller, user = sellers[0], users[0]
        if args.reserve_bps:
            PayoutPolicy.objects.create(
                seller=seller, reserve_bps=args.reserve_bps, reserve_days=90
            )
        CommissionRule.objects.create(
            name="Platform default",
            scope=CommissionRule.Scope.DEFAULT,
            percentage_bps=COMMISSION_BPS,
            active_from=now - timedelta(days=DAYS + 30),
        )
        platform = {
            kind: LedgerAccount.objects.create(kind=kind, currency="USD")
            for kind in ("processor", "commission")
        }
        accounts = {
            (i, kind): account
            for (i, kind), account in zip(
                [(i, kind) for i in range(n) for kind in SELLER_KINDS],
                LedgerAccount.objects.bulk_create(
                    LedgerAccount(seller=s, kind=kind, currency="USD")
                    for s in sellers
                    for kind in SELLER_KINDS
                ),
                strict=True,
            )
        }
        payouts: dict[tuple[int, int], Payout] = {}
        for i, history in enumerate(histories):
            made = Payout.objects.bulk_create(
                Payout(
                    seller=sellers[i],
                    currency="USD",
                    amount_minor=p.amount,
                    period=f"{p.day:%Y-%m-%d}",
                    status=Payout.Status.PAID if p.paid_at else Payout.Status.IN_TRANSIT,
                    processor="local",
                    created_at=p.day,
                    sent_at=p.day,
                    paid_at=p.paid_at,
                )
                for p in history.payouts
            )
            payouts.update(((i, index), payout) for index, payout in enumerate(made))

        timeline = sorted(
            ((event, i) for i, history in enumerate(histories) for event in history.events),
            key=lambda pair: pair[0].at,
        )
        balances: dict[int, int] = defaultdict(int)
        for offset in range(0, len(timeline), BATCH):
            batch = timeline[offset : offset + BATCH]
            txns = []
            for event, i in batch:
                if event.reference_type == "payout":
                    reference = payouts[i, event.reference_id].pk
                    key = f"payout:{reference}:{event.kind.removeprefix('payout_')}"
                else:
                    reference = event.reference_id
                    key = f"{event.kind}:{reference}:{sellers[i].pk}"
                txns.append(
                    LedgerTransaction(
                        kind=event.kind,
                        idempotency_key=key,
                        reference_type=event.reference_type,
                        reference_id=str(reference),
                        created_at=event.at,
                    )
                )
            LedgerTransaction.objects.bulk_create(txns)
            entries = []
            for txn, (event, i) in zip(txns, batch, strict=True):
                for kind, amount in event.postings:
                    account = accounts[i, kind] if kind in SELLER_KINDS else platform[kind]
                    balances[account.pk] += amount
                    entries.append(
                        LedgerEntry(
                            transaction=txn,
                            account=account,
                            amount_minor=amount,
                            currency="USD",
                            transaction_kind=event.kind,
                            created_at=event.at,
                        )
                    )
            LedgerEntry.objects.bulk_create(entries, batch_size=5000)
        every_account = [*platform.values(), *accounts.values()]
        for account in every_account:
            account.balance_minor = balances[account.pk]
        LedgerAccount.objects.bulk_update(every_account, ["balance_minor"])

        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT
                  (SELECT count(*) FROM (
                     SELECT 1 FROM payments_ledgerentry GROUP BY transaction_id
                     HAVING sum(amount_minor) <> 0) unbalanced),
                  (SELECT count(*) FROM payments_ledgeraccount a
                   WHERE a.balance_minor <> (SELECT coalesce(sum(e.amount_minor), 0)
                     FROM payments_ledgerentry e WHERE e.account_id = a.id))
                """
            )
            unbalanced, drifted = cursor.fetchone()
        if unbalanced or drifted:
            sys.exit(f"Bad load: {unbalanced} unbalanced transactions, {drifted} drifted accounts.")
    inserted = time.perf_counter() - started

    # A ledger in service is vacuumed by autovacuum: do it now, so that it does not
    # start in the middle of the timings, and analyse what was loaded.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) accounts_user, accounts_seller, payments_ledgeraccount,"
            " payments_ledgertransaction, payments_ledgerentry, payments_payout,"
            " payments_payoutpolicy, payments_commissionrule, payments_localaccount"
        )
    analysed = time.perf_counter() - started

    by_kind = histories[0].seller_entries()
    seller_entries = LedgerEntry.objects.filter(account__seller=seller).count()
    total_entries = LedgerEntry.objects.count()

    # --- The requests ----------------------------------------------------------------
    client = Client()
    client.force_login(user)

    def get() -> None:
        response = client.get("/sell/", secure=True)
        if response.status_code != 200 or b"<h1>Earnings</h1>" not in response.content:
            sys.exit(f"GET /sell/ answered {response.status_code}, not the dashboard.")

    get()  # warm-up: URL resolver, templates, middleware, connection
    load_average = os.getloadavg()[0]
    request_ms: list[float] = []
    query_counts: list[int] = []
    sql_ms: list[float] = []
    cpu_ms: list[float] = []  # this process's CPU: Python, not the database's work
    requests: list[list[Statement]] = []
    for _ in range(args.requests):
        statements: list[Statement] = []

        def timer(execute, sql, params, many, context, statements=statements):
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                ms = (time.perf_counter() - t) * 1000
                statements.append(Statement(sql, params, ms, caller()))

        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(timer):
            t, cpu = time.perf_counter(), time.process_time()
            get()
            request_ms.append((time.perf_counter() - t) * 1000)
            cpu_ms.append((time.process_time() - cpu) * 1000)
        query_counts.append(len(captured.captured_queries))
        sql_ms.append(sum(s.ms for s in statements))
        requests.append(statements)

    # The same statement runs in every request: match them by text and rank among equals.
    times: dict[tuple[str, int], list[float]] = defaultdict(list)
    last: dict[tuple[str, int], Statement] = {}
    for statements in requests:
        seen: Counter[str] = Counter()
        for statement in statements:
            seen[statement.sql] += 1
            times[statement.sql, seen[statement.sql]].append(statement.ms)
            last[statement.sql, seen[statement.sql]] = statement
    slowest = sorted(times, key=lambda key: statistics.median(times[key]), reverse=True)[:3]

    def text(statement: Statement) -> str:
        return " ".join(connection.ops.compose_sql(statement.sql, statement.params).split())

    median = statistics.median(request_ms)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    kinds = sorted(by_kind, key=by_kind.__getitem__, reverse=True)
    print(f"Seller dashboard GET /sell/ on PostgreSQL {version}, DEBUG off, in-process client")
    print(
        f"  ledger: {seller_entries:,} entries on the seller's accounts over {DAYS} days "
        f"({', '.join(f'{by_kind[kind]:,} {kind}' for kind in kinds)})"
    )
    print(
        f"          + {total_entries - seller_entries:,} other entries (the platform's legs,"
        f" and {args.other_sellers} other sellers with {args.other_entries:,} entries on"
        f" their accounts): {total_entries:,} entries in all"
    )
    print(
        f"  seller: paid out daily ({len(histories[0].payouts)} payouts), rolling reserve "
        f"{args.reserve_bps / 100:g}% over 90 days"
    )
    print(
        f"  load: {generated + inserted + analysed:.1f} s (generate {generated:.1f} s, "
        f"insert {inserted:.1f} s, VACUUM ANALYZE {analysed:.1f} s)"
    )
    print(
        f"  machine: {os.cpu_count()} CPUs, load average {load_average:.2f} when the timings"
        " started (other work on the machine inflates them)"
    )
    print()
    print(
        "| requests | median ms | p95 ms | max ms | queries/request | SQL ms/request"
        " | Python CPU ms/request |"
    )
    print(
        "|---------:|----------:|-------:|-------:|----------------:|---------------:"
        "|----------------------:|"
    )
    print(
        f"| {len(request_ms)} | {median:.1f} | {percentile(request_ms, 0.95):.1f} | "
        f"{max(request_ms):.1f} | {'/'.join(map(str, sorted(set(query_counts))))} | "
        f"{statistics.median(sql_ms):.1f} | {statistics.median(cpu_ms):.1f} |"
    )
    print("  (p95 is nearest-rank; the SQL and CPU columns are medians)")
    print()
    print("Slowest statements (median / max ms over the requests):")
    for key in slowest:
        print(
            f"  {statistics.median(times[key]):7.1f} / {max(times[key]):7.1f}  "
            f"{last[key].origin}\n                     {text(last[key])[:200]}"
        )
    print()
    verdict = "PASS" if median < TARGET_MS else "OVER"
    print(f"{verdict}: median {median:.1f} ms against the {TARGET_MS} ms target")

    if args.verbose and slowest:
        statement = last[slowest[0]]
        print()
        print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest statement ({statement.origin}):")
        print(f"  {text(statement)}")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", statement.params)
            for (line,) in cursor.fetchall():
                print(f"  {line}")


if __name__ == "__main__":
    main()
