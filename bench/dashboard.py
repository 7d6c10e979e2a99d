"""Benchmark: balance and dashboard reads of a seller with a long ledger, among a
million ledger entries, on the configured database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench_reads \\
        .venv/bin/python -m bench.dashboard            # 1,000,000 entries, ~3 minutes
    ... python -m bench.dashboard --quick              # 20,000 entries: a CI smoke run

The ledger: one measured seller (payouts enabled, paid out daily, a 10% rolling
reserve so the reserve query runs too) whose accounts hold ``--entries``
(100,000) entries spread over the last 400 days, as the posting service would
leave them: sales credited to pending, seller-borne processor fees, hold
releases (pending to available) after 7 days, 3% of orders refunded in full,
and a payout every day (available to in transit, then paid two days later).
Then about ``--other-sellers`` (200) other sellers with histories of the same
shape (paid weekly), each about the same size, are added until the table holds
``--total`` (1,000,000) entries in all, the platform's legs of every
transaction included: by default the measured seller's 100,000 entries plus
about 76,000 platform legs of their transactions, and 824,000 more across the
other sellers, so the seller's rows are a tenth of the table.

Loading: the histories are made in Python, then written in time order with
``COPY`` (ids given by the loader, sequences moved past them), with the
services' transaction kinds, idempotency keys and references; every entry
carries its transaction's kind, and the accounts' running balances are the
sums of their entries (a platform account's in its balance shards). Refunded
orders get real rows (order, seller order, line, refund and refund line,
numbered as the order), and so do the orders still in their hold (order,
seller order and line: the next payout's estimate reads them); their entries
name the line, as the services write them. The other orders, released and
not refunded, exist only as references in the ledger (no read measured joins
them). The load is then
vacuumed, analysed and proven with ``ledger_check`` (what ``manage.py
check_ledger`` runs): the benchmark stops if it finds any problem.

Measured, all in process, so server time with no network:
- ``GET /sell/`` through Django's test client (DEBUG off), once to warm up and
  then ``--requests`` (40) times: median, p95 and maximum, SQL statements, SQL
  time, this process's CPU time and the template's time per request, and the
  three slowest statements with the code that ran them (``--verbose`` adds
  EXPLAIN ANALYZE of the slowest);
- ``payments.ledger.balances.seller_balance`` for the same seller, once to warm up and
  then ``--calls`` (200) times: p50, p95, statements per call.
It ends with one ``bench.report`` row each: p95 against 20 ms for
``seller_balance`` and 50 ms for the dashboard (issue 18), the dashboard's row with
its statements per request and its SQL and template time. Timings are wall clock: other
work on the machine inflates them, so the load average is printed with them.
The database is wiped first: never point it at a database you care about.
``--reuse`` skips the wipe and the load and times the requests on what an earlier
run loaded (a second timing without loading a million entries again).
"""

from __future__ import annotations

import argparse
import gc
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
from typing import Any

TARGET_MS = 50  # the dashboard's p95 (issue 18)
BALANCE_TARGET_MS = 20  # seller_balance's p95
DAYS = 400
HOLD = timedelta(days=7)
IN_TRANSIT = timedelta(days=2)
REFUND_RATE = 0.03
COMMISSION_BPS = 1000
SELLER_KINDS = ("pending", "available", "in_transit")


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


@dataclass(frozen=True, slots=True)
class PlannedRefund:
    """An order refunded in full: it gets real order, line and refund rows (numbered as
    the order), which ``check_ledger`` compares with the ledger."""

    number: int
    sold: datetime
    refunded: datetime
    released: datetime | None  # the hold release, None if not yet due
    total: int
    commission: int


@dataclass(frozen=True, slots=True)
class PlannedSale:
    """An order still in its hold (not refunded): it gets real order, seller order and
    line rows (numbered as the order), which the dashboard's next payout reads."""

    number: int
    sold: datetime
    total: int
    commission: int


@dataclass
class History:
    events: list[Event] = field(default_factory=list)
    payouts: list[PlannedPayout] = field(default_factory=list)
    refunds: list[PlannedRefund] = field(default_factory=list)
    pending: list[PlannedSale] = field(default_factory=list)

    def entries(self) -> int:
        """All the entries its transactions write, the platform's legs too."""
        return sum(len(event.postings) for event in self.events)

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
        still_pending = -share  # what this order leaves on the pending account
        released = sold + HOLD
        refunded_by_now = refunded_in_hold = False
        if rng.random() < REFUND_RATE:
            refunded = sold + timedelta(seconds=rng.uniform(3600, 20 * 86400))
            if refunded < now:
                refunded_by_now = True
                history.refunds.append(
                    PlannedRefund(
                        number,
                        sold,
                        refunded,
                        released if released < now else None,
                        total,
                        commission,
                    )
                )
                account = "pending" if refunded < released else "available"
                if account == "pending":
                    still_pending += share
                    refunded_in_hold = True
                events.append(
                    Event(
                        refunded,
                        "refund",
                        "refund",
                        number,
                        (("processor", -total), (account, share), ("commission", commission)),
                    )
                )
        # The seller bears the processor's fee, except on a sale refunded in full inside
        # its hold: its fee would be released to available as a debt that no refund or
        # dispute explains, which ``check_ledger`` (check 12) reports.
        if not refunded_in_hold:
            fee_at = sold + timedelta(seconds=2)
            events.append(
                Event(
                    fee_at,
                    "processor_fee",
                    "order",
                    number,
                    (("processor", -fee), ("pending", fee)),
                )
            )
            still_pending += fee
        if released >= now and not refunded_by_now:
            history.pending.append(PlannedSale(number, sold, total, commission))
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


def histories_for(args: argparse.Namespace, now: datetime) -> list[History]:
    """The measured seller (number 0, paid daily) and then other sellers (paid weekly),
    each about the same size, until the ledger holds ``args.total`` entries in all."""
    histories = [
        history_of_size(args.seed, entries=args.entries, first_order=1, now=now, payout_every=1)
    ]
    total = histories[0].entries()
    per_seller_side = 1.7  # entries in all per entry on a seller's accounts; then measured
    i = 0
    while total < args.total:
        i += 1
        left = max(args.other_sellers - i + 1, 1)
        wanted = math.ceil((args.total - total) / left)
        history = history_of_size(
            args.seed + i,
            entries=max(8, round(wanted / per_seller_side)),
            first_order=i * 1_000_000 + 1,
            now=now,
            payout_every=7,
        )
        per_seller_side = history.entries() / max(sum(history.seller_entries().values()), 1)
        histories.append(history)
        total += history.entries()
    return histories


def load(histories: list[History], *, now: datetime, reserve_bps: int) -> tuple[object, object]:
    """Write the histories as the posting service would have: sellers and their
    accounts, payouts, full orders (order, seller order, line, refund) for the refunded
    ones, then every transaction and entry in time order with ``COPY``, each payout's
    breakdown, and the accounts' running balances. Returns (user, seller) of seller 0.
    Call in a transaction."""
    from django.core.management.color import no_style
    from django.db import connection

    from accounts.models import User
    from bench.sellers import bench_sellers
    from marketplace.models import Category, Order, OrderLine, Product, SellerOrder
    from payments.models import (
        CommissionRule,
        LedgerAccount,
        LedgerBalanceShard,
        LedgerEntry,
        LedgerTransaction,
        Payout,
        PayoutPolicy,
        Refund,
        RefundLine,
    )

    n = len(histories)
    users, sellers = bench_sellers(n, tag="d")
    if reserve_bps:
        PayoutPolicy.objects.create(seller=sellers[0], reserve_bps=reserve_bps, reserve_days=90)
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
    with explicit_created_at(Payout):
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

    # The refunded orders, numbered as in the ledger (order, seller order, line and
    # refund share the number): one product per seller, one customer.
    category = Category.objects.create(name="Bench", slug="bench")
    customer = User.objects.create(email="bench-customer@example.com", password="!")
    products = Product.objects.bulk_create(
        Product(
            seller=s,
            category=category,
            title=f"Bench product {i}",
            slug=f"bench-product-{i}",
            price_minor=1000,
            currency="USD",
        )
        for i, s in enumerate(sellers)
    )
    refunds = [(i, r) for i, history in enumerate(histories) for r in history.refunds]
    with explicit_created_at(Order, Refund):
        Order.objects.bulk_create(
            (
                Order(
                    pk=r.number,
                    customer=customer,
                    currency="USD",
                    status=Order.Status.REFUNDED,
                    total_minor=r.total,
                    commission_minor=r.commission,
                    refunded_minor=r.total,
                    created_at=r.sold,
                    paid_at=r.sold,
                )
                for _, r in refunds
            ),
            batch_size=5000,
        )
        SellerOrder.objects.bulk_create(
            (
                SellerOrder(
                    pk=r.number,
                    order_id=r.number,
                    seller=sellers[i],
                    status=SellerOrder.Status.REFUNDED,
                    gross_minor=r.total,
                    commission_minor=r.commission,
                    seller_share_minor=r.total - r.commission,
                    refunded_minor=r.total,
                    released_at=r.released,
                )
                for i, r in refunds
            ),
            batch_size=5000,
        )
        OrderLine.objects.bulk_create(
            (
                OrderLine(
                    pk=r.number,
                    order_id=r.number,
                    seller_order_id=r.number,
                    product=products[i],
                    title=products[i].title,
                    unit_price_minor=r.total,
                    quantity=1,
                    gross_minor=r.total,
                    commission_minor=r.commission,
                    seller_share_minor=r.total - r.commission,
                    refunded_minor=r.total,
                    refunded_commission_minor=r.commission,
                    refunded_seller_minor=r.total - r.commission,
                    rule_percentage_bps=COMMISSION_BPS,
                )
                for i, r in refunds
            ),
            batch_size=5000,
        )
        Refund.objects.bulk_create(
            (
                Refund(
                    pk=r.number,
                    order_id=r.number,
                    amount_minor=r.total,
                    currency="USD",
                    status=Refund.Status.SUCCEEDED,
                    processor="local",
                    created_at=r.refunded,
                    completed_at=r.refunded,
                )
                for _, r in refunds
            ),
            batch_size=5000,
        )
        RefundLine.objects.bulk_create(
            (
                RefundLine(
                    refund_id=r.number,
                    order_line_id=r.number,
                    amount_minor=r.total,
                    seller_amount_minor=r.total - r.commission,
                    commission_amount_minor=r.commission,
                )
                for _, r in refunds
            ),
            batch_size=5000,
        )
    # The sales still in their hold, as the checkout leaves them: paid, not released.
    pending = [(i, p) for i, history in enumerate(histories) for p in history.pending]
    with explicit_created_at(Order):
        Order.objects.bulk_create(
            (
                Order(
                    pk=p.number,
                    customer=customer,
                    currency="USD",
                    status=Order.Status.PAID,
                    total_minor=p.total,
                    commission_minor=p.commission,
                    created_at=p.sold,
                    paid_at=p.sold,
                )
                for _, p in pending
            ),
            batch_size=5000,
        )
    SellerOrder.objects.bulk_create(
        (
            SellerOrder(
                pk=p.number,
                order_id=p.number,
                seller=sellers[i],
                status=SellerOrder.Status.PAID,
                gross_minor=p.total,
                commission_minor=p.commission,
                seller_share_minor=p.total - p.commission,
            )
            for i, p in pending
        ),
        batch_size=5000,
    )
    OrderLine.objects.bulk_create(
        (
            OrderLine(
                pk=p.number,
                order_id=p.number,
                seller_order_id=p.number,
                product=products[i],
                title=products[i].title,
                unit_price_minor=p.total,
                quantity=1,
                gross_minor=p.total,
                commission_minor=p.commission,
                seller_share_minor=p.total - p.commission,
                rule_percentage_bps=COMMISSION_BPS,
            )
            for i, p in pending
        ),
        batch_size=5000,
    )
    with_lines = {r.number for _, r in refunds} | {p.number for _, p in pending}

    # Every transaction in time order, ids given here, written with COPY.
    timeline = sorted(
        ((event, i) for i, history in enumerate(histories) for event in history.events),
        key=lambda pair: pair[0].at,
    )
    # The keys the services use (payments/collection/captures.py, holds.py, refunds.py,
    # payout_sending.py); the order numbers are unique across sellers.
    key_of = {
        "payment_captured": "payment:{}",
        "processor_fee": "fee:{}",
        "hold_released": "hold:{}",
        "refund": "refund:{}",
        "payout_sent": "payout:{}:sent",
        "payout_paid": "payout:{}:paid",
    }
    balances: dict[int, int] = defaultdict(int)
    entry_id = 0
    unclaimed: dict[int, list[int]] = defaultdict(list)  # per seller: entry ids
    breakdowns: list[tuple[int, int]] = []  # (payout id, entry id)
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY payments_ledgertransaction (id, kind, idempotency_key, reference_type,"
            " reference_id, description, created_at) FROM STDIN"
        ) as copy:
            for txn_id, (event, i) in enumerate(timeline, start=1):
                reference = event.reference_id
                if event.reference_type == "payout":
                    reference = payouts[i, reference].pk
                copy.write_row(
                    (
                        txn_id,
                        event.kind,
                        key_of[event.kind].format(reference),
                        event.reference_type,
                        str(reference),
                        "",
                        event.at,
                    )
                )
        with cursor.copy(
            "COPY payments_ledgerentry (id, transaction_id, account_id, amount_minor,"
            " currency, transaction_kind, order_line_id, created_at) FROM STDIN"
        ) as copy:
            for txn_id, (event, i) in enumerate(timeline, start=1):
                # As the services post them: the seller's and the commission legs of
                # an order's transactions name its line (where the line exists).
                line = (
                    event.reference_id
                    if event.reference_type != "payout" and event.reference_id in with_lines
                    else None
                )
                if event.kind == "payout_sent":
                    # The payout pays for the available entries since the last one
                    # (its breakdown, as ``payout_create`` records it).
                    payout_id = payouts[i, event.reference_id].pk
                    breakdowns.extend((payout_id, claimed) for claimed in unclaimed.pop(i, []))
                for kind, amount in event.postings:
                    account = accounts[i, kind] if kind in SELLER_KINDS else platform[kind]
                    balances[account.pk] += amount
                    entry_id += 1
                    if kind == "available" and not event.kind.startswith("payout_"):
                        unclaimed[i].append(entry_id)
                    copy.write_row(
                        (
                            entry_id,
                            txn_id,
                            account.pk,
                            amount,
                            "USD",
                            event.kind,
                            line if kind != "processor" else None,
                            event.at,
                        )
                    )
        with cursor.copy("COPY payments_payoutentry (payout_id, entry_id) FROM STDIN") as copy:
            for row in breakdowns:
                copy.write_row(row)
        # The ids were given here: move the sequences past them.
        models = [LedgerTransaction, LedgerEntry, Order, SellerOrder, OrderLine, Refund]
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)
    # Running balances as the posting service keeps them: a seller account's on its
    # row, a platform account's in its balance shards (here all in shard 0).
    for account in accounts.values():
        account.balance_minor = balances[account.pk]
    LedgerAccount.objects.bulk_update(list(accounts.values()), ["balance_minor"])
    LedgerBalanceShard.objects.bulk_create(
        LedgerBalanceShard(account=account, shard=0, balance_minor=balances[account.pk])
        for account in platform.values()
    )
    return users[0], sellers[0]


def seeded(args: argparse.Namespace) -> tuple[Any, Any, Counter[str], int, int, str]:
    """Wipe the database and load the histories (see the module docstring), vacuumed,
    analysed and proven by ``check_ledger``. Returns the measured seller's user and
    seller, their entries by transaction kind, how many other sellers, how many payouts
    the seller had, and what the load took, in words."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from payments.checks import ledger_check

    call_command("flush", interactive=False, verbosity=0)

    # --- The histories (the seller is number 0) ---------------------------------------
    started = time.perf_counter()
    now = timezone.now()
    histories = histories_for(args, now)
    generated = time.perf_counter() - started

    # --- Sellers, accounts, payouts, orders, then every transaction in time order -----
    started = time.perf_counter()
    with transaction.atomic():
        user, seller = load(histories, now=now, reserve_bps=args.reserve_bps)
    inserted = time.perf_counter() - started

    # A ledger in service is vacuumed by autovacuum: do it now, so that it does not
    # start in the middle of the timings, and analyse what was loaded.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) accounts_user, accounts_seller, payments_ledgeraccount,"
            " payments_ledgerbalanceshard,"
            " payments_ledgertransaction, payments_ledgerentry, payments_payout,"
            " payments_payoutentry, payments_payoutpolicy, payments_commissionrule,"
            " payments_localaccount,"
            " marketplace_order, marketplace_sellerorder, marketplace_orderline,"
            " payments_refund, payments_refundline"
        )
    analysed = time.perf_counter() - started

    # Proven consistent by the project's own check (as `manage.py check_ledger`).
    started = time.perf_counter()
    report = ledger_check()
    checked = time.perf_counter() - started
    if not report.ok:
        for problem in report.problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(f"Bad load: check_ledger found {len(report.problems)} problem(s).")

    by_kind = histories[0].seller_entries()
    others, payouts_made = len(histories) - 1, len(histories[0].payouts)
    # The histories are millions of Python objects a server would not hold: let them go
    # (the caller collects), so that the garbage collector's full passes over them do
    # not land in the timings.
    del histories
    loaded = (
        f"{generated + inserted + analysed:.1f} s (generate {generated:.1f} s, "
        f"insert {inserted:.1f} s, VACUUM ANALYZE {analysed:.1f} s); check_ledger "
        f"{checked:.1f} s: consistent ({report.transactions:,} transactions,"
        f" {report.orders:,} paid orders checked)"
    )
    return user, seller, by_kind, others, payouts_made, loaded


def reused() -> tuple[Any, Any, Counter[str], int, int, str]:
    """What ``seeded`` returns, read from a database an earlier run loaded (``--reuse``):
    the seller is the first one, as the loader made them."""
    from django.db.models import Count

    from accounts.models import Seller
    from payments.models import LedgerEntry, Payout

    seller = Seller.objects.select_related("user").order_by("pk").first()
    if seller is None:
        sys.exit("Nothing to reuse: run the benchmark once without --reuse.")
    by_kind: Counter[str] = Counter(
        dict(
            LedgerEntry.objects.filter(account__seller=seller)
            .values_list("transaction_kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
    )
    others = Seller.objects.count() - 1
    payouts_made = Payout.objects.filter(seller=seller).count()
    return seller.user, seller, by_kind, others, payouts_made, "reused (loaded by an earlier run)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--total", type=int, default=1_000_000, help="ledger entries in the database, at least"
    )
    parser.add_argument("--entries", type=int, default=100_000, help="on the seller's accounts")
    parser.add_argument(
        "--other-sellers", type=int, default=200, help="about; they share what is left"
    )
    parser.add_argument("--requests", type=int, default=40, help="timed GETs after a warm-up")
    parser.add_argument(
        "--calls", type=int, default=200, help="timed seller_balance calls after a warm-up"
    )
    parser.add_argument(
        "--reserve-bps", type=int, default=1000, help="the seller's rolling reserve; 0 for none"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 20,000 entries (5,000 the seller's, 10 other sellers), 10 GETs,"
        " 50 calls",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="EXPLAIN ANALYZE of the slowest statement"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time the requests on the database an earlier run loaded (no wipe, no load)",
    )
    args = parser.parse_args()
    if args.quick:
        args.total, args.entries, args.other_sellers = 20_000, 5_000, 10
        args.requests, args.calls = 10, 50

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    import logging
    import warnings

    from django.conf import settings
    from django.core.management import call_command

    logging.disable(logging.INFO)
    # whitenoise looks for STATIC_ROOT, which only `collectstatic` creates
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    settings.DEBUG = False  # as in production: no template debugging, no query log
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.report import Row, emit
    from bench.report import percentile as nearest_rank
    from payments.ledger.balances import seller_balance
    from payments.models import LedgerEntry

    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL (set DATABASE_URL).")
    call_command("migrate", interactive=False, verbosity=0)
    if args.reuse:
        user, seller, by_kind, others, payouts_made, loaded = reused()
    else:
        user, seller, by_kind, others, payouts_made, loaded = seeded(args)
    gc.collect()  # the histories, gone
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
    render_ms: list[float] = []  # the template's share of each request
    from marketplace.views import seller_dashboard

    def timed_render(*args, _render=seller_dashboard.render, **kwargs):
        t = time.perf_counter()
        try:
            return _render(*args, **kwargs)
        finally:
            render_ms.append((time.perf_counter() - t) * 1000)

    seller_dashboard.render = timed_render
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

    # --- seller_balance, called directly (server time: no request around it) ---------
    seller_balance(seller=seller, currency="USD")  # warm-up
    balance_ms: list[float] = []
    balance_counts: list[int] = []
    for _ in range(args.calls):
        with CaptureQueriesContext(connection) as captured:
            t = time.perf_counter()
            seller_balance(seller=seller, currency="USD")
            balance_ms.append((time.perf_counter() - t) * 1000)
        balance_counts.append(len(captured.captured_queries))
    load_average_after = os.getloadavg()[0]

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
        f" and {others} other sellers' histories): {total_entries:,} entries in all"
    )
    print(
        f"  seller: paid out daily ({payouts_made} payouts), rolling reserve "
        f"{args.reserve_bps / 100:g}% over 90 days"
    )
    print(f"  load: {loaded}")
    print(
        f"  machine: {os.cpu_count()} CPUs, load average {load_average:.2f} when the timings"
        f" started, {load_average_after:.2f} when they ended (other work on the machine"
        " inflates them)"
    )
    print()
    print(
        "| requests | median ms | p95 ms | max ms | queries/request | SQL ms/request"
        " | Python CPU ms/request | template ms/request |"
    )
    print(
        "|---------:|----------:|-------:|-------:|----------------:|---------------:"
        "|----------------------:|--------------------:|"
    )
    print(
        f"| {len(request_ms)} | {median:.1f} | {nearest_rank(request_ms, 95):.1f} | "
        f"{max(request_ms):.1f} | {'/'.join(map(str, sorted(set(query_counts))))} | "
        f"{statistics.median(sql_ms):.1f} | {statistics.median(cpu_ms):.1f} | "
        f"{statistics.median(render_ms):.1f} |"
    )
    print(
        "  (p95 is nearest-rank; the SQL, CPU and template columns are medians; the"
        " template's time is Python, the SQL's is mostly the database's)"
    )
    print()
    print("Slowest statements (median / max ms over the requests):")
    for key in slowest:
        print(
            f"  {statistics.median(times[key]):7.1f} / {max(times[key]):7.1f}  "
            f"{last[key].origin}\n                     {text(last[key])[:200]}"
        )

    if args.verbose and slowest:
        statement = last[slowest[0]]
        print()
        print(f"EXPLAIN (ANALYZE, BUFFERS) of the slowest statement ({statement.origin}):")
        print(f"  {text(statement)}")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", statement.params)
            for (line,) in cursor.fetchall():
                print(f"  {line}")

    work = f"seller with {seller_entries:,} of {total_entries:,} entries"
    # The dashboard's row also says where its time goes (medians per request).
    split = (
        f"; SQL {statistics.median(sql_ms):.1f} ms, template {statistics.median(render_ms):.1f} ms"
        " per request (medians)"
    )
    for what, samples, counts, target, unit, more in (
        ("seller_balance", balance_ms, balance_counts, BALANCE_TARGET_MS, "call", ""),
        ("seller dashboard GET /sell/", request_ms, query_counts, TARGET_MS, "request", split),
    ):
        p50, p95 = nearest_rank(samples, 50), nearest_rank(samples, 95)
        emit(
            Row(
                what=what,
                work=f"{len(samples)} {unit}s, {work}",
                time=f"p50 {p50:.1f} ms, p95 {p95:.1f} ms{more} (load avg {load_average:.2f})",
                rate=f"{1000 / p50:,.0f} {unit}s/s",
                statements=f"{'/'.join(map(str, sorted(set(counts))))} per {unit}",
                against=f"{target} ms (p95)",
                ratio=f"{p95 / target:.2f} of {target} ms",
                target=f"p95 under {target} ms",
                met=p95 < target,
            )
        )


if __name__ == "__main__":
    main()
