"""Benchmark: "payment captured" postings per second through the posting service at
1, 4 and 8 concurrent clients, each against raw SQL through psycopg writing the same
rows with the same statements at the same concurrency, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
        .venv/bin/python -m bench.ledger_posting --postings 3000

Builds orders of three lines each, from three different sellers (out of a pool of
sellers), and the postings ``payments.collection.captures.payment_postings`` makes for each:
the processor account debited with the total, then per line the seller's pending
account and the platform's commission account credited (seven entries on five
accounts, two of them the platform's). Then, per concurrency C, in the same run on
the same database, with C client processes (each its own connection; processes, so
the clients do not share a GIL):

- the service: ``ledger_post`` of N postings split over the C clients, each in its
  own ``transaction.atomic()`` as its callers run it, with the key ``payment:<order>``;
- the limit: raw SQL through psycopg, N other orders over C clients, the statements
  the service runs: INSERT the ledger transaction (``ON CONFLICT DO NOTHING``),
  INSERT its entries (one statement), lock the seller accounts in id order (SELECT
  ... FOR NO KEY UPDATE), UPDATE their balances (one statement), add to one balance
  shard per platform account (one ``INSERT ... ON CONFLICT DO UPDATE``), COMMIT.

The two run alternately in rounds (so load from anything else on the machine falls
on both). The ratio of the rates is checked against the issue's target: the service
reaches at least half of the raw rate at every concurrency. The ledger is checked
afterwards (``ledger_check``: balances, seller accounts' and the platform's shards,
equal the sums of entries, every order captured once). Prints one table row per
concurrency (``bench/report.py``). The database is wiped first: never point it at a
database you care about.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from queue import Empty
from typing import Any

TARGET = 1 / 2
SELLERS_PER_ORDER = 3
COMMISSION_BPS = 1000
CONCURRENCY = (1, 4, 8)

# Filled by ``main`` before the clients fork: what each client posts.
# One posting: (order id, [(account id, amount, order line id, currency)], platform ids).
_WORK: dict[str, list[Any]] = {}
_ACCOUNTS: dict[int, Any] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postings", type=int, default=3000, help="per concurrency, each, service and raw"
    )
    parser.add_argument("--sellers", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=4, help="service and raw alternate")
    parser.add_argument("--quick", action="store_true", help="240 postings (CI smoke size)")
    args = parser.parse_args()
    n = 240 if args.quick else args.postings
    rounds = max(1, min(args.rounds, n // max(CONCURRENCY)))

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.db import connection, connections
    from django.utils import timezone

    from marketplace.models import Order, OrderLine
    from payments.checks import ledger_check
    from payments.collection.captures import payment_postings
    from payments.ledger.posting import Posting, platform_account, seller_account
    from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

    logging.disable(logging.INFO)
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    started = time.perf_counter()
    total = 2 * n * len(CONCURRENCY)
    orders = _orders(total, args.sellers)
    lines_of: dict[int, list] = {}
    for line in OrderLine.objects.select_related("seller_order__seller").order_by("pk"):
        lines_of.setdefault(line.order_id, []).append(line)
    # The postings ``payment_postings`` makes, built from accounts read once (it looks
    # the five accounts up on each call: the capture's cost, not the posting's), and
    # checked against ``payment_postings`` itself on a sample of orders.
    sellers = {line.seller_order.seller for lines in lines_of.values() for line in lines}
    accounts = {(s.pk, "pending"): seller_account(s, "pending", "USD") for s in sellers}
    for kind in ("processor", "commission"):
        accounts[None, kind] = platform_account(kind, "USD")
    _ACCOUNTS.update({account.pk: account for account in accounts.values()})

    def postings_of(order: Order) -> list[Posting]:
        made = [Posting(accounts[None, "processor"], order.total_minor)]
        for line in lines_of[order.pk]:
            pending = accounts[line.seller_order.seller_id, "pending"]
            made.append(Posting(pending, -line.seller_share_minor, line.pk))
            made.append(Posting(accounts[None, "commission"], -line.commission_minor, line.pk))
        return made

    for order in orders[:10] + orders[-10:]:
        assert payment_postings(order, lines_of[order.pk]) == postings_of(order)
    work = [
        (
            order.pk,
            [(p.account.pk, p.amount_minor, p.order_line_id) for p in postings_of(order)],
        )
        for order in orders
    ]
    shape = Counter(_ACCOUNTS[pk].kind for pk, _, _ in work[0][1])
    assert shape == {"processor": 1, "pending": 3, "commission": 3}, shape
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    built = time.perf_counter() - started

    results = []
    load_before = os.getloadavg()
    for level, clients in enumerate(CONCURRENCY):
        base = 2 * n * level
        _WORK["service"] = work[base : base + n]
        _WORK["raw"] = work[base + n : base + 2 * n]
        connections.close_all()  # the clients fork: each opens its own
        seconds = {"service": 0.0, "raw": 0.0}
        statements = {"service": 0, "raw": 0}
        bounds = [n * r // rounds for r in range(rounds + 1)]
        for r in range(rounds):
            sides = ("service", "raw") if r % 2 == 0 else ("raw", "service")
            for side in sides:
                took, ran = _run_clients(side, clients, bounds[r], bounds[r + 1])
                seconds[side] += took
                statements[side] += ran
        results.append((clients, seconds, statements))
    load_after = os.getloadavg()

    # Prove the ledger: every order captured once, balances equal to their entries.
    Order.objects.update(status=Order.Status.PAID, paid_at=timezone.now())
    report = ledger_check()
    txns = LedgerTransaction.objects.filter(kind="payment_captured").count()
    entries = LedgerEntry.objects.count()
    ok = report.ok and txns == total and entries == 7 * total
    if not ok:
        print("Ledger check failed:", txns, entries, *report.problems[:10], sep="\n  ")
    platform_rows = LedgerAccount.objects.filter(seller__isnull=True).count()

    from bench.report import Row, emit

    for clients, seconds, statements in results:
        service_rate = n / seconds["service"]
        raw_rate = n / seconds["raw"]
        ratio = service_rate / raw_rate
        emit(
            Row(
                what=(
                    f"ledger posting, {clients} concurrent client{'s' if clients > 1 else ''}"
                    " (payment captured, 3 sellers: 7 entries on 5 accounts)"
                ),
                work=f"{n} postings each, service and raw, {rounds} alternating rounds",
                time=f"service {seconds['service']:.2f} s, raw {seconds['raw']:.2f} s",
                rate=f"service {service_rate:.0f}/s, raw {raw_rate:.0f}/s",
                statements=(
                    f"service {statements['service'] / n:.1f}, raw {statements['raw'] / n:.1f}"
                    " per posting (+ COMMIT each)"
                ),
                against=f"raw SQL through psycopg, same statements, {clients} clients",
                ratio=f"{ratio:.2f}",
                target=f"≥ {TARGET:.2f}, ledger checked {'ok' if ok else 'FAILED'}",
                met=ratio >= TARGET and ok,
            )
        )
    print(
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"({os.cpu_count()} CPUs); set-up {built:.1f} s; {args.sellers} sellers; "
        f"{platform_rows} platform accounts"
    )


def _run_clients(side: str, clients: int, lo: int, hi: int) -> tuple[float, int]:
    """Postings ``lo:hi`` of ``side`` over ``clients`` processes started together;
    returns the wall time from the common start to the last client's end, and the
    statements they ran."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    queue = ctx.Queue()
    target = _service_client if side == "service" else _raw_client
    procs = [
        ctx.Process(
            target=_client,
            args=(target, side, lo + (hi - lo) * i // clients, lo + (hi - lo) * (i + 1) // clients),
            kwargs={"barrier": barrier, "queue": queue},
        )
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    ran = 0
    ends: list[float] = []
    while len(ends) < clients:
        try:
            end, count = queue.get(timeout=1)
        except Empty:
            if any(proc.exitcode not in (None, 0) for proc in procs):
                for proc in procs:
                    proc.terminate()
                sys.exit(f"A {side} client failed.")
            continue
        ends.append(end)
        ran += count
    for proc in procs:
        proc.join()
    return max(ends) - started, ran


def _client(target: Any, side: str, lo: int, hi: int, *, barrier: Any, queue: Any) -> None:
    """One client process: connect and warm up, wait for the others, post, report."""
    prepared = target(_WORK[side][lo:hi])
    barrier.wait()
    count = prepared()
    queue.put((time.perf_counter(), count))


def _service_client(work: list) -> Any:
    from django.db import connection, transaction

    from payments.ledger.posting import Posting, ledger_post
    from payments.models import LedgerTransaction

    postings = [
        (order_id, [Posting(_ACCOUNTS[pk], amount, line) for pk, amount, line in entries])
        for order_id, entries in work
    ]
    connection.ensure_connection()
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    def run() -> int:
        with connection.execute_wrapper(count):
            for order_id, posting in postings:
                with transaction.atomic():
                    ledger_post(
                        kind=LedgerTransaction.Kind.PAYMENT_CAPTURED,
                        idempotency_key=f"payment:{order_id}",
                        reference_type="order",
                        reference_id=order_id,
                        postings=posting,
                        description=f"Payment for order #{order_id}",
                    )
        connection.close()
        return statements

    return run


def _raw_client(work: list) -> Any:
    from django.conf import settings

    from bench.raw import raw_connection
    from payments.ledger.posting import balance_shard

    kind = "payment_captured"
    shards = settings.LEDGER_BALANCE_SHARDS
    raw = raw_connection()
    raw.execute("SELECT 1")
    raw.commit()
    statements = 0

    def post(order_id: int, entries: list) -> None:
        nonlocal statements
        key = f"payment:{order_id}"
        seller: dict[int, int] = {}
        platform: dict[int, int] = {}
        for pk, amount, _ in entries:
            into = seller if _ACCOUNTS[pk].seller_id is not None else platform
            into[pk] = into.get(pk, 0) + amount
        sellers = sorted(seller)
        shard = balance_shard(key, shards)
        with raw.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_ledgertransaction (kind, idempotency_key, reference_type,"
                " reference_id, description, created_at) VALUES (%s, %s, 'order', %s, %s, now())"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, txid_current()",
                [kind, key, str(order_id), f"Payment for order #{order_id}"],
            )
            txn_id, _ = cursor.fetchone()
            cursor.execute(
                "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
                " currency, transaction_kind, order_line_id, created_at)"
                " SELECT %s, e.account, e.amount, 'USD', %s, e.line, now()"
                " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])"
                " AS e(account, amount, line)",
                [
                    txn_id,
                    kind,
                    [pk for pk, _, _ in entries],
                    [amount for _, amount, _ in entries],
                    [line for _, _, line in entries],
                ],
            )
            cursor.execute(
                "SELECT id FROM payments_ledgeraccount WHERE id = ANY(%s) ORDER BY id"
                " FOR NO KEY UPDATE",
                [sellers],
            )
            cursor.fetchall()
            cursor.execute(
                "UPDATE payments_ledgeraccount AS a SET balance_minor = a.balance_minor + d.delta"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                [sellers, [seller[pk] for pk in sellers]],
            )
            ids = sorted(pk for pk, delta in platform.items() if delta)
            cursor.execute(
                "INSERT INTO payments_ledgerbalanceshard AS s (account_id, shard, balance_minor)"
                " SELECT d.id, %s, d.delta FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta)"
                " ORDER BY d.id"
                " ON CONFLICT (account_id, shard)"
                " DO UPDATE SET balance_minor = s.balance_minor + EXCLUDED.balance_minor",
                [shard, ids, [platform[pk] for pk in ids]],
            )
            statements += 5
        raw.commit()

    def run() -> int:
        for order_id, entries in work:
            post(order_id, entries)
        raw.close()
        return statements

    return run


def _orders(count: int, sellers: int) -> list:
    """``count`` orders awaiting payment, each of three lines from three different sellers."""
    from django.db import transaction

    from accounts.models import User
    from bench.sellers import bench_sellers
    from marketplace.models import Category, Order, OrderLine, Product, SellerOrder

    with transaction.atomic():
        _, shops = bench_sellers(max(sellers, SELLERS_PER_ORDER), tag="lp")
        buyer = User.objects.create(email="buyer@example.com", password="!")
        category = Category.objects.create(name="Bench", slug="bench")
        products = Product.objects.bulk_create(
            Product(
                seller=shop,
                category=category,
                title=f"Thing {i}",
                slug=f"thing-{i}",
                price_minor=1000 + 100 * i,
                currency="USD",
                stock=10**9,
            )
            for i, shop in enumerate(shops)
        )
        plan = []  # per order: [(product, seller, gross, commission, share)]
        for number in range(count):
            parts = []
            for k in range(SELLERS_PER_ORDER):
                i = (SELLERS_PER_ORDER * number + k) % len(shops)
                gross = products[i].price_minor
                commission = gross * COMMISSION_BPS // 10_000
                parts.append((products[i], shops[i], gross, commission, gross - commission))
            plan.append(parts)
        orders = Order.objects.bulk_create(
            Order(
                customer=buyer,
                currency="USD",
                total_minor=sum(p[2] for p in parts),
                commission_minor=sum(p[3] for p in parts),
            )
            for parts in plan
        )
        seller_orders = SellerOrder.objects.bulk_create(
            SellerOrder(
                order=order,
                seller=seller,
                gross_minor=gross,
                commission_minor=commission,
                seller_share_minor=share,
            )
            for order, parts in zip(orders, plan, strict=True)
            for _, seller, gross, commission, share in parts
        )
        flat = [part for parts in plan for part in parts]
        OrderLine.objects.bulk_create(
            OrderLine(
                order_id=seller_order.order_id,
                seller_order=seller_order,
                product=product,
                title=product.title,
                unit_price_minor=gross,
                quantity=1,
                gross_minor=gross,
                commission_minor=commission,
                seller_share_minor=share,
                rule_percentage_bps=COMMISSION_BPS,
            )
            for seller_order, (product, _, gross, commission, share) in zip(
                seller_orders, flat, strict=True
            )
        )
    return orders


if __name__ == "__main__":
    main()
