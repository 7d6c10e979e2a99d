"""Benchmark: "payment captured" postings per second through the posting service,
against raw SQL through psycopg writing the same rows, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench \\
        .venv/bin/python -m bench.ledger_posting --postings 20000

Builds 2N orders of three lines each, from three different sellers (out of a
pool of sellers), and the postings ``payments.captures.payment_postings`` makes
for each: the processor account debited with the total, then per line the
seller's pending account and the platform's commission account credited (seven
entries on five accounts). Then it times, in the same run on the same database:

- the service: ``ledger_post`` of N of those postings, each in its own
  ``transaction.atomic()`` as its callers run it, with the key ``payment:<order>``;
- the limit: raw SQL through a psycopg connection of its own, for the other N
  orders: per posting, in one transaction, INSERT the ledger transaction, INSERT
  its entries (one statement), lock the accounts in id order (SELECT ... FOR
  UPDATE), UPDATE their balances (one statement), COMMIT.

The two run alternately in rounds (so load from anything else on the machine
falls on both), and the ratio of the rates is checked against the issue's
target: the service reaches at least a third of the raw rate. The ledger is
checked afterwards (``ledger_check``: balances equal the sums of entries, every
order captured once). Prints one table row (``bench/report.py``); ``--verbose``
adds the service's statements by kind. The database is wiped first: never point
it at a database you care about.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable

TARGET = 1 / 3
SELLERS_PER_ORDER = 3
COMMISSION_BPS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=20_000, help="each, service and raw")
    parser.add_argument("--sellers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10, help="service and raw alternate")
    parser.add_argument("--quick", action="store_true", help="500 postings (CI smoke size)")
    parser.add_argument("--verbose", action="store_true", help="SQL statements by kind")
    args = parser.parse_args()
    n = 500 if args.quick else args.postings
    rounds = max(1, min(args.rounds, n))

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging

    import psycopg
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.raw import raw_connection
    from marketplace.models import Order, OrderLine
    from payments.captures import payment_postings
    from payments.checks import ledger_check
    from payments.ledger import Posting, ledger_post, platform_account, seller_account
    from payments.models import LedgerEntry, LedgerTransaction

    logging.disable(logging.INFO)
    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)

    started = time.perf_counter()
    orders = _orders(2 * n, args.sellers)
    lines_of: dict[int, list] = {}
    for line in OrderLine.objects.select_related("seller_order__seller").order_by("pk"):
        lines_of.setdefault(line.order_id, []).append(line)
    # The postings ``payment_postings`` makes. It looks the five accounts up on each
    # call (the capture's cost, not the posting's, and 5 x 2N queries of set-up), so
    # the same list is built here from accounts read once, and checked against
    # ``payment_postings`` itself on a sample of orders.
    sellers = {line.seller_order.seller for lines in lines_of.values() for line in lines}
    accounts = {(s.pk, "pending"): seller_account(s, "pending", "USD") for s in sellers}
    for kind in ("processor", "commission"):
        accounts[None, kind] = platform_account(kind, "USD")

    def postings_of(order: Order) -> list[Posting]:
        made = [Posting(accounts[None, "processor"], order.total_minor)]
        for line in lines_of[order.pk]:
            pending = accounts[line.seller_order.seller_id, "pending"]
            made.append(Posting(pending, -line.seller_share_minor, line.pk))
            made.append(Posting(accounts[None, "commission"], -line.commission_minor, line.pk))
        return made

    postings = [postings_of(order) for order in orders]
    sample = orders[:10] + orders[-10:]
    for order in sample:
        assert payment_postings(order, lines_of[order.pk]) == postings[orders.index(order)]
    shape = Counter(p.account.kind for p in postings[0])
    assert shape == {"processor": 1, "pending": 3, "commission": 3}, shape
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    built = time.perf_counter() - started

    service_orders, raw_orders = orders[:n], orders[n:]
    service_postings, raw_postings = postings[:n], postings[n:]

    statements = 0
    by_kind: Counter[str] = Counter()
    time_by_kind: Counter[str] = Counter()

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        words = sql.split()
        table = next((w.strip('"') for w in words if w.strip('"').startswith("payments_")), "")
        what = f"{words[0]} {table}".strip()
        by_kind[what] += 1
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            time_by_kind[what] += time.perf_counter() - t0

    commit_time = 0.0

    def service(lo: int, hi: int) -> None:
        nonlocal commit_time
        with connection.execute_wrapper(count):
            for order, posting in zip(service_orders[lo:hi], service_postings[lo:hi], strict=True):
                with transaction.atomic():
                    ledger_post(
                        kind=LedgerTransaction.Kind.PAYMENT_CAPTURED,
                        idempotency_key=f"payment:{order.pk}",
                        reference_type="order",
                        reference_id=order.pk,
                        postings=posting,
                        description=f"Payment for order #{order.pk}",
                    )
                    leaving = time.perf_counter()
                commit_time += time.perf_counter() - leaving

    raw = raw_connection()
    raw_statements = 0

    raw_time_by_kind: Counter[str] = Counter()

    def run(cursor: psycopg.Cursor, sql: str, params: list) -> None:
        nonlocal raw_statements
        raw_statements += 1
        t0 = time.perf_counter()
        cursor.execute(sql, params)
        raw_time_by_kind[" ".join(sql.split()[:3])] += time.perf_counter() - t0

    def raw_post(order: Order, entries: list[Posting]) -> None:
        kind = LedgerTransaction.Kind.PAYMENT_CAPTURED.value
        deltas: dict[int, int] = {}
        for p in entries:
            deltas[p.account.pk] = deltas.get(p.account.pk, 0) + p.amount_minor
        ids = sorted(deltas)
        with raw.cursor() as cursor:
            run(
                cursor,
                "INSERT INTO payments_ledgertransaction (kind, idempotency_key, reference_type,"
                " reference_id, description, created_at) VALUES (%s, %s, 'order', %s, %s, now())"
                " RETURNING id",
                [kind, f"payment:{order.pk}", str(order.pk), f"Payment for order #{order.pk}"],
            )
            (txn_id,) = cursor.fetchone()
            run(
                cursor,
                "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
                " currency, transaction_kind, order_line_id, created_at)"
                " SELECT %s, e.account, e.amount, e.currency, %s, e.line, now()"
                " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[])"
                " AS e(account, amount, currency, line)",
                [
                    txn_id,
                    kind,
                    [p.account.pk for p in entries],
                    [p.amount_minor for p in entries],
                    [p.account.currency for p in entries],
                    [p.order_line_id for p in entries],
                ],
            )
            run(
                cursor,
                "SELECT id FROM payments_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [ids],
            )
            cursor.fetchall()
            run(
                cursor,
                "UPDATE payments_ledgeraccount AS a SET balance_minor = a.balance_minor + d.delta"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta) WHERE a.id = d.id",
                [ids, [deltas[i] for i in ids]],
            )
        t0 = time.perf_counter()
        raw.commit()
        raw_time_by_kind["COMMIT"] += time.perf_counter() - t0

    def raw_sql(lo: int, hi: int) -> None:
        for order, entries in zip(raw_orders[lo:hi], raw_postings[lo:hi], strict=True):
            raw_post(order, entries)

    # Warm both paths up (connections, prepared statements) on a few postings each.
    warm = min(20, n // 10)
    service(0, warm)
    raw_sql(0, warm)
    statements, raw_statements = 0, 0
    by_kind.clear()
    time_by_kind.clear()
    commit_time = 0.0
    raw_time_by_kind.clear()

    times = {"service": 0.0, "raw": 0.0}
    cpu = {"service": 0.0, "raw": 0.0}
    runners: dict[str, Callable[[int, int], None]] = {"service": service, "raw": raw_sql}
    bounds = [warm + (n - warm) * r // rounds for r in range(rounds + 1)]
    load_before = os.getloadavg()
    for r in range(rounds):
        order = ("service", "raw") if r % 2 == 0 else ("raw", "service")
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            runners[name](bounds[r], bounds[r + 1])
            times[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    load_after = os.getloadavg()
    raw.close()
    timed = n - warm

    # Prove the ledger: every order captured once, balances equal to their entries.
    Order.objects.update(status=Order.Status.PAID, paid_at=timezone.now())
    report = ledger_check()
    txns = LedgerTransaction.objects.filter(kind="payment_captured").count()
    entries = LedgerEntry.objects.count()
    ok = report.ok and txns == 2 * n and entries == 7 * 2 * n
    if not ok:
        print("Ledger check failed:", txns, entries, *report.problems[:10], sep="\n  ")

    service_rate = timed / times["service"]
    raw_rate = timed / times["raw"]
    ratio = service_rate / raw_rate
    from bench.report import Row, emit

    emit(
        Row(
            what="ledger posting (payment captured, 3 sellers: 7 entries on 5 accounts)",
            work=f"{timed} postings each, service and raw, {rounds} alternating rounds",
            time=f"service {times['service']:.2f} s, raw {times['raw']:.2f} s",
            rate=f"service {service_rate:.0f}/s, raw {raw_rate:.0f}/s",
            statements=(
                f"service {statements / timed:.1f}, raw {raw_statements / timed:.1f} per posting"
                " (+ COMMIT each)"
            ),
            against="raw SQL through psycopg, same rows, same transactions",
            ratio=f"{ratio:.2f}",
            target=f"≥ {TARGET:.2f}, ledger checked {'ok' if ok else 'FAILED'}",
            met=ratio >= TARGET and ok,
        )
    )
    print(
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"({os.cpu_count()} CPUs); set-up {built:.1f} s; this process's CPU per posting: "
        f"service {1000 * cpu['service'] / timed:.2f} ms, raw {1000 * cpu['raw'] / timed:.2f} ms"
    )
    if args.verbose:
        print("service, per posting:")
        for kind, number in by_kind.most_common():
            print(
                f"  {number / timed:6.2f} per posting  {kind:40} "
                f"{1000 * time_by_kind[kind] / number:6.2f} ms each"
            )
        print(f"  COMMIT {1000 * commit_time / timed:.2f} ms each")
        print("raw, per posting:")
        for kind, seconds in raw_time_by_kind.items():
            print(f"  {kind:50} {1000 * seconds / timed:6.2f} ms each")


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
