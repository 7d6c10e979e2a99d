"""Benchmark: customers placing and paying orders over HTTP against the production stack.

    .venv/bin/python -m bench.checkout_http              # 8 clients for 60 s
    .venv/bin/python -m bench.checkout_http --quick      # CI smoke: 2 clients for 10 s

Needs PostgreSQL and Redis on 127.0.0.1 and locust (``pip install -r
requirements-bench.txt``). The database ``--database-url`` (default
``marketplace_bench_http``, created if missing) is migrated and WIPED first.

The stack runs as in production (``Procfile``): ``gunicorn marketplace.wsgi``
with 2 workers and the Procfile's options, ``celery -A marketplace worker``
(concurrency 2) on Redis (database 11 as the broker, 12 for results; both are
emptied first), ``DEBUG=0`` behind a TLS proxy (``USE_X_FORWARDED_PROTO=1``:
the clients send ``X-Forwarded-Proto: https``), the ``local`` processor, static
files collected for whitenoise. Emails go to Django's dummy backend.

Seeded: 3 USD sellers with payouts enabled and ``--products`` products each
(stock for far more than the run can sell), the demo's USD commission rule
(10% + $0.30) and one customer account per client (distinct accounts, so the
login throttle never sees two clients on one email).

Then locust (``bench/locust_checkout.py``, headless, no wait time) drives the
same number of clients twice: first ``/livez`` for ``--static-duration``
seconds (the limit: a view that touches nothing), then the checkout journey for
``--duration`` seconds. Each checkout user logs in once, then in a loop buys
one product from each of the 3 sellers and pays with a test card; an order
counts once the order page says it is paid, which happens only after the
worker processed the processor's event. Users finish the order in hand when
the time is up.

Afterwards the benchmark checks that the paid orders in the database are
exactly those the clients saw paid, that no order is left awaiting payment,
that no webhook event failed, that the ledger check passes, and that the
access log has no 4xx/5xx. SQL statements and commits are counted in every web
and worker process (``bench/dbcount.py``: a commit is a statement outside a
transaction or an outermost transaction that ran one, as PostgreSQL counts them),
split into the customer's requests, the local processor's own statements inside
them (its ``payments_local*`` tables: HTTP calls with Stripe) and the worker;
PostgreSQL's own transaction count for the database (``xact_commit``) is shown
beside them. It is higher: Django's connection health check (``CONN_HEALTH_CHECKS``)
runs a ``SELECT 1`` of its own, outside the cursor, before each request's first
query, and PostgreSQL counts each as a transaction.

The sessions are read from Redis (``CACHE_URL``, database 10, emptied first), as in
production (``marketplace/sessions.py``). The clients poll an order's status as the
page does (its backoff), not faster.

Prints the orders per second, the latency of the whole order (first product
page to the page saying "paid": p50/p95/p99), each request's timings, the p95
of the customer's requests (the waits between status polls are not requests),
then one table row (``bench/report.py``) whose ratio is the checkout's requests
per second over ``/livez``'s, with the target "errors 0".
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketplace_bench_http"
BROKER_URL = "redis://127.0.0.1:6379/11"
RESULT_URL = "redis://127.0.0.1:6379/12"
CACHE_URL = "redis://127.0.0.1:6379/10"
QUEUE = "bench_checkout_http"
PASSWORD = "bench-customer-pass"
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)


_T0 = time.monotonic()


# Issue 18's targets: requests a second at least this share of /livez's on the same
# server, and what one paid order may cost in the customer's own requests.
TARGET_RATIO = 0.3
TARGET_STATEMENTS = 60
TARGET_COMMITS = 15


def _step(what: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {what}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _pg_counters(url: str) -> dict[str, int]:
    """The database's counters, read from the ``postgres`` database so the reading
    itself is not counted."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted,"
            " tup_updated, tup_deleted FROM pg_stat_database WHERE datname = %s",
            [name],
        ).fetchone()
    return dict(zip(PG_COUNTERS, row, strict=True))


def _seed(products_per_seller: int, customers: int) -> dict:
    """Sellers, products and customers; returns what the locust users need."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from accounts import services as account_services
    from accounts.models import User
    from marketplace.celery import app
    from marketplace.models import Category
    from marketplace.services.products import product_create
    from payments.collection.onboarding import seller_account_sync, seller_onboarding_start
    from payments.models import CommissionRule
    from payments.processors.local import LocalProcessor

    app.conf.task_always_eager = True  # the sellers' onboarding events, in-process
    try:
        with transaction.atomic():
            category = Category.objects.create(name="Bench goods", slug="bench-goods")
            CommissionRule.objects.create(
                name="Platform default, USD",
                scope="default",
                percentage_bps=1000,
                fixed_fee_minor=30,
                currency="USD",
            )
            by_seller = []
            for s in range(3):
                user = account_services.user_sign_up(
                    email=f"bench-seller{s}@example.com", password=PASSWORD, full_name=f"Shop {s}"
                )
                seller = account_services.seller_become(
                    user=user,
                    display_name=f"Bench shop {s}",
                    slug=f"bench-shop-{s}",
                    country="US",
                    default_currency="USD",
                )
                seller_onboarding_start(seller=seller, refresh_url="/", return_url="/")
                seller.refresh_from_db()
                LocalProcessor().account_complete_onboarding(account_id=seller.payout_account_id)
                seller_account_sync(processor_name="local", account_id=seller.payout_account_id)
                products = []
                for p in range(products_per_seller):
                    product = product_create(
                        seller=seller,
                        title=f"Bench item {s}-{p}",
                        category=category,
                        description="A thing to buy in the benchmark.",
                        price_minor=1000 + 137 * p + 11 * s,
                        currency="USD",
                        stock=1_000_000,
                    )
                    products.append({"id": product.pk, "slug": product.slug})
                by_seller.append(products)
            password = make_password(PASSWORD)  # one slow hash for every customer
            emails = [f"bench-customer{i}@example.com" for i in range(customers)]
            User.objects.bulk_create(
                User(email=e, full_name=f"Customer {i}", password=password)
                for i, e in enumerate(emails)
            )
    finally:
        app.conf.task_always_eager = False
    return {"customers": emails, "password": PASSWORD, "products_by_seller": by_seller}


class Stack:
    """gunicorn and the Celery worker, as subprocesses in their own process groups."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int) -> None:
        self.env, self.workdir, self.port = env, workdir, port
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def start_worker(self) -> None:
        self._start(
            "celery",
            [
                sys.executable,
                "-m",
                "bench.dbcount",
                "celery",
                "-A",
                "marketplace",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        deadline = time.monotonic() + 60
        while "ready." not in (self.workdir / "celery.log").read_text():
            self._alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start: see celery.log")
            time.sleep(0.2)

    def start_web(self) -> None:
        # The Procfile's web command, bound to a free local port.
        self._start(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "bench.dbcount",
                "gunicorn",
                "marketplace.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--timeout",
                "30",
                "--graceful-timeout",
                "30",
                "--access-logfile",
                str(self.workdir / "access.log"),
            ],
        )
        deadline = time.monotonic() + 60
        while True:
            self._alive()
            try:
                status, body = self.get("/healthz")
            except OSError:
                status, body = 0, ""
            if status == 200:
                health = json.loads(body)
                if health["status"] != "ok":
                    raise RuntimeError(f"/healthz says {health}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /healthz: see gunicorn.log")
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int, str]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"X-Forwarded-Proto": "https"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def _alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {name}.log")

    def stop(self) -> None:
        """SIGTERM each process group (gunicorn and Celery shut down gracefully), then
        SIGKILL whatever is left after 40 s."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Children left behind in the group (none expected).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


def _locust(
    user_class: str,
    *,
    clients: int,
    seconds: int,
    port: int,
    env: dict[str, str],
    workdir: Path,
) -> dict:
    results = workdir / f"locust-{user_class}.json"
    log_path = workdir / f"locust-{user_class}.log"
    args = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "bench" / "locust_checkout.py"),
        "--headless",
        "--users",
        str(clients),
        "--spawn-rate",
        str(clients),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "60",
        "--host",
        f"http://127.0.0.1:{port}",
        "--only-summary",
        "--loglevel",
        "WARNING",
        user_class,
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**env, "BENCH_RESULTS": str(results)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=seconds + 120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if not results.exists():
        raise RuntimeError(f"locust wrote no results: see {log_path}")
    return json.loads(results.read_text())


def _cpu(stack: Stack, database_url: str) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) so far of each process of the stack, by role: the
    gunicorn workers, the Celery worker and its pool, and the PostgreSQL backends
    serving the benchmark's database. Differences between two readings tell where a
    phase's CPU went, which the other loads on the machine do not change much."""
    import psutil
    import psycopg

    def seconds(pids) -> dict[int, float]:
        found = {}
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            found[pid] = times.user + times.system
        return found

    master = next(p.pid for name, p in stack.procs if name == "gunicorn")
    celery = next(p.pid for name, p in stack.procs if name == "celery")
    name = database_url.rsplit("/", 1)[1]
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        backends = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchall()
        ]
    return {
        "web": seconds(c.pid for c in psutil.Process(master).children()),
        "worker": seconds(
            [celery, *(c.pid for c in psutil.Process(celery).children(recursive=True))]
        ),
        "postgres": seconds(backends),
    }


def _cpu_used(before: dict, after: dict) -> dict[str, float]:
    return {
        role: sum(t - before[role].get(pid, 0.0) for pid, t in after[role].items())
        for role in after
    }


def _print_requests(result: dict) -> None:
    print("  per request (ms):      count  fail   p50   p95   p99    max")
    for s in result["request_stats"]:
        print(
            f"  {s['name']:<42} {s['requests']:6d} {s['failures']:5d} {s['p50_ms']:5.0f} "
            f"{s['p95_ms']:5.0f} {s['p99_ms']:5.0f} {s['max_ms']:6.0f}"
        )


def _wait_queue_empty(timeout: float = 60) -> int:
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = client.llen(QUEUE) + client.hlen("unacked")
        if waiting == 0:
            return 0
        time.sleep(0.25)
    return waiting


def _access_log_problems(path: Path) -> dict[str, int]:
    """Responses with a 4xx or 5xx status in gunicorn's access log (common log format)."""
    problems: dict[str, int] = {}
    for line in path.read_text().splitlines():
        try:
            request, rest = line.split('"', 2)[1:]
            status = rest.split()[0]
        except ValueError:
            continue
        if status[:1] in "45":
            key = f"{status} {request}"
            problems[key] = problems.get(key, 0) + 1
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of checkout load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--static-duration", type=int, default=15, help="seconds of /livez")
    parser.add_argument("--products", type=int, default=20, help="products per seller")
    parser.add_argument(
        "--poll",
        type=float,
        default=0.0,
        help="seconds between status polls (default 0: as the page does, its backoff)",
    )
    parser.add_argument("--three-ds-every", type=int, default=10, help="0: never")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 2 clients, 10 s + 5 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.clients, args.static_duration = 10, 2, 5

    workdir = Path(tempfile.mkdtemp(prefix="bench-checkout-http-"))
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        # A Fernet key: 32 random bytes, URL-safe base64.
        "WEBHOOK_SECRET_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "USE_X_FORWARDED_PROTO": "1",
        "DATABASE_URL": args.database_url,
        "PAYMENTS_PROCESSOR": "local",
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": RESULT_URL,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        # Sessions are read from the cache (marketplace/sessions.py) where it is Redis.
        "CACHE_URL": CACHE_URL,
        "EMAIL_URL": "dummymail://",
        "VAR_DIR": str(workdir / "var"),
        "STATIC_ROOT": str(workdir / "static"),
        "MEDIA_ROOT": str(workdir / "media"),
        "BENCH_DBCOUNT_DIR": str(workdir / "dbcount"),
        "BENCH_DATA": str(workdir / "data.json"),
        "BENCH_POLL_SECONDS": str(args.poll),
        "BENCH_THREE_DS_EVERY": str(args.three_ds_every),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    os.environ.update(env)
    (workdir / "var").mkdir()
    _ensure_database(args.database_url)

    import django

    django.setup()
    import logging

    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    from bench import dbcount
    from bench.report import Row, emit, percentile

    if connection.vendor != "postgresql":
        sys.exit("Run the benchmark on PostgreSQL.")
    logging.disable(logging.INFO)
    print(f"logs in {workdir}", flush=True)
    _step("migrate, flush")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    for url in (BROKER_URL, RESULT_URL, CACHE_URL):
        redis.Redis.from_url(url).flushdb()
    _step("collectstatic")
    # The server's storage (whitenoise's compressed manifest) needs only the manifest to
    # render pages; the clients fetch no static files, so skip the compression (minutes
    # of brotli on this machine): the same file names, the same manifest.
    with override_settings(
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {
                "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
            },
        }
    ):
        call_command("collectstatic", interactive=False, verbosity=0)
    _step("seed")
    data = _seed(args.products, args.clients)
    (workdir / "data.json").write_text(json.dumps(data))
    connection.close()

    stack = Stack(env, workdir, port)
    ok = False
    try:
        _step("start the Celery worker")
        stack.start_worker()
        _step("start gunicorn")
        stack.start_web()
        # Warm both workers (imports, templates) before anything is timed.
        for _ in range(6):
            stack.get("/livez")
            stack.get(f"/products/{data['products_by_seller'][0][0]['slug']}/")
        print(f"gunicorn on 127.0.0.1:{port}; load before: {os.getloadavg()}", flush=True)
        time.sleep(2 * dbcount.FLUSH_SECONDS)
        warm_up = dbcount.per_process(workdir / "dbcount")

        _step("locust: /livez")
        cpu_static_before = _cpu(stack, args.database_url)
        static = _locust(
            "StaticClient",
            clients=args.clients,
            seconds=args.static_duration,
            port=port,
            env=env,
            workdir=workdir,
        )
        cpu_static = _cpu_used(cpu_static_before, _cpu(stack, args.database_url))
        static_elapsed = static["end"] - static["start"]
        static_rps = static["requests"] / static_elapsed
        load_static = os.getloadavg()[0]
        print(
            f"/livez: {static['requests']} requests in {static_elapsed:.1f} s = "
            f"{static_rps:.0f} req/s, {static['failures']} failures, p50/p95/p99 "
            f"{static['request_p50_ms']:.0f}/{static['request_p95_ms']:.0f}/"
            f"{static['request_p99_ms']:.0f} ms (load {load_static:.2f})\n"
            f"  CPU per request: gunicorn {cpu_static['web'] / static['requests'] * 1000:.2f} ms, "
            f"locust {static['cpu_seconds'] / static['requests'] * 1000:.2f} ms",
            flush=True,
        )

        time.sleep(2 * dbcount.FLUSH_SECONDS)
        statements_before = dbcount.per_process(workdir / "dbcount")
        kinds_before = {k: dbcount.per_process(workdir / "dbcount", k) for k in dbcount.KINDS}
        pg_before = _pg_counters(args.database_url)
        cpu_before = _cpu(stack, args.database_url)
        _step("locust: checkout")
        checkout = _locust(
            "CheckoutCustomer",
            clients=args.clients,
            seconds=args.duration,
            port=port,
            env=env,
            workdir=workdir,
        )
        load_checkout = os.getloadavg()[0]
        _step("wait for the worker, stop the stack")
        left = _wait_queue_empty()
        cpu = _cpu_used(cpu_before, _cpu(stack, args.database_url))
        time.sleep(2 * dbcount.FLUSH_SECONDS)
        ran = {
            pid: count - statements_before.get(pid, 0)
            for pid, count in dbcount.per_process(workdir / "dbcount").items()
        }
        web_pids = set(_gunicorn_worker_pids(stack))
        statements = sum(ran.values())
        web_statements = sum(n for pid, n in ran.items() if pid in web_pids)
        # Commits and the local processor's share, in the web processes and the worker.
        kinds = {"web": {}, "worker": {}}
        for kind in dbcount.KINDS:
            for pid, count in dbcount.per_process(workdir / "dbcount", kind).items():
                role = "web" if pid in web_pids else "worker"
                done = count - kinds_before[kind].get(pid, 0)
                kinds[role][kind] = kinds[role].get(kind, 0) + done
        static_statements = sum(
            statements_before.get(pid, 0) - warm_up.get(pid, 0) for pid in statements_before
        )
        stack.stop()
        time.sleep(1.5)  # the servers' backends report their statistics as they exit
        pg_after = _pg_counters(args.database_url)
        ok = True
    finally:
        if not ok:
            stack.stop()
            print(f"FAILED: logs kept in {workdir}", file=sys.stderr)

    # --- what the clients saw ----------------------------------------------------------
    orders = checkout["orders"]
    elapsed = checkout["end"] - checkout["start"]
    latencies = [(o["end"] - o["start"]) * 1000 for o in orders]
    rps = checkout["requests"] / elapsed
    print(
        f"checkout: {len(orders)} orders paid in {elapsed:.1f} s = {len(orders) / elapsed:.2f} "
        f"orders/s by {args.clients} clients ({sum(o['three_ds'] for o in orders)} with the "
        f"confirmation step), {checkout['requests']} requests = {rps:.1f} req/s, "
        f"{checkout['failures']} failed requests, {len(checkout['errors'])} failed orders "
        f"(load {load_checkout:.2f})"
    )
    if latencies:
        print(
            "  whole order (first product page to 'paid'), ms: "
            f"p50 {percentile(latencies, 50):.0f}, p95 {percentile(latencies, 95):.0f}, "
            f"p99 {percentile(latencies, 99):.0f}, max {max(latencies):.0f}"
        )
        print(
            "  CPU per order: "
            + ", ".join(f"{role} {t / len(orders) * 1000:.0f} ms" for role, t in cpu.items())
            + f", locust {checkout['cpu_seconds'] / len(orders) * 1000:.0f} ms; "
            f"gunicorn CPU per request {cpu['web'] / checkout['requests'] * 1000:.1f} ms"
        )
    _print_requests(checkout)
    for error in checkout["errors"][:20]:
        print(f"  ERROR {error}")
    for failure in checkout["failure_details"][:20]:
        print(
            f"  FAILED {failure['occurrences']}x {failure['method']} {failure['name']}: "
            f"{failure['error']}"
        )

    _step("check the database")
    # --- what the database says ----------------------------------------------------------
    from marketplace.models import Order
    from payments.checks import ledger_check
    from payments.models import WebhookEvent

    problems: list[str] = []
    paid_ids = set(Order.objects.filter(status=Order.Status.PAID).values_list("pk", flat=True))
    client_ids = {o["order"] for o in orders}
    if paid_ids != client_ids:
        problems.append(
            f"paid in the database {len(paid_ids)}, seen paid by the clients {len(client_ids)} "
            f"(only in the database: {sorted(paid_ids - client_ids)[:10]}, only seen: "
            f"{sorted(client_ids - paid_ids)[:10]})"
        )
    unpaid = Order.objects.exclude(status=Order.Status.PAID).count()
    if unpaid:
        problems.append(f"{unpaid} orders not paid")
    failed_events = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).count()
    if failed_events:
        problems.append(f"{failed_events} webhook events failed")
    if left:
        problems.append(f"{left} Celery tasks still queued after 60 s")
    report = ledger_check()
    problems += [f"ledger: {p}" for p in report.problems[:10]]
    bad_responses = _access_log_problems(workdir / "access.log")
    problems += [f"access log: {n}x {what}" for what, n in bad_responses.items()]
    for name in ("gunicorn", "celery"):
        text = (workdir / f"{name}.log").read_text()
        if "Traceback" in text or " ERROR " in text:
            problems.append(f"errors in {name}.log")
    print(
        f"database: {len(paid_ids)} paid orders, ledger check "
        f"{'passed' if not report.problems else 'FAILED'} ({report.transactions} transactions, "
        f"{report.entries} entries)"
    )
    for problem in problems:
        print(f"  PROBLEM {problem}")

    n = max(len(orders), 1)
    worker_statements = statements - web_statements
    web, worker = kinds["web"], kinds["worker"]
    web_ours = web_statements - web.get("processor_statements", 0)
    web_commits_ours = web.get("commits", 0) - web.get("processor_commits", 0)
    steps_p95 = checkout["request_p95_ms"]
    print(
        f"  per order: customer's requests {web_ours / n:.1f} statements, "
        f"{web_commits_ours / n:.1f} commits; local processor (in those requests) "
        f"{web.get('processor_statements', 0) / n:.1f} statements, "
        f"{web.get('processor_commits', 0) / n:.1f} commits; worker "
        f"{worker_statements / n:.1f} statements, {worker.get('commits', 0) / n:.1f} commits; "
        f"customer's steps p95 {steps_p95:.0f} ms (waits for the processor excluded)"
    )
    xacts = pg_after["xact_commit"] - pg_before["xact_commit"]
    rollbacks = pg_after["xact_rollback"] - pg_before["xact_rollback"]
    print(
        f"  SQL statements: {statements} ({web_statements} web, {worker_statements} worker); "
        f"PostgreSQL: {xacts} commits, {rollbacks} rollbacks, "
        + ", ".join(
            f"{k} {pg_after[k] - pg_before[k]}" for k in PG_COUNTERS if k.startswith("tup_")
        )
    )
    if static_statements:
        problems.append(f"/livez ran {static_statements} SQL statements")
    errors = checkout["failures"] + len(checkout["errors"]) + static["failures"] + len(problems)
    if latencies:
        latency = (
            f"order p50/p95/p99 {percentile(latencies, 50):.0f}/{percentile(latencies, 95):.0f}/"
            f"{percentile(latencies, 99):.0f} ms"
        )
    else:
        latency = "no order paid"
    emit(
        Row(
            what=f"checkout over HTTP (gunicorn -w 2, PostgreSQL, local processor, Celery), "
            f"{args.clients} clients",
            work=f"{len(orders)} orders paid, {checkout['requests']} requests "
            f"({checkout['requests'] / n:.1f} per order)",
            time=f"{elapsed:.1f} s (load avg {load_checkout:.2f})",
            rate=f"{len(orders) / elapsed:.2f} orders/s, {rps:.1f} req/s; steps p95 "
            f"{steps_p95:.0f} ms; {latency}",
            statements=f"{statements / n:.0f} per order ({web_ours / n:.0f} customer's "
            f"requests + {web.get('processor_statements', 0) / n:.0f} local processor + "
            f"{worker_statements / n:.0f} worker); commits per order: "
            f"{web_commits_ours / n:.1f} customer's requests, {xacts / n:.1f} in all (PostgreSQL)",
            against=f"/livez on the same gunicorn: {static_rps:.0f} req/s "
            f"(load avg {load_static:.2f})",
            ratio=f"{rps / static_rps:.3f} (req/s)",
            target=f"≥ {TARGET_RATIO:.2f} of /livez, errors 0 (got {errors}), customer's requests"
            f" under {TARGET_STATEMENTS} statements and {TARGET_COMMITS} commits an order",
            met=errors == 0
            and rps / static_rps >= TARGET_RATIO
            and web_ours / n < TARGET_STATEMENTS
            and web_commits_ours / n < TARGET_COMMITS,
        )
    )
    if not args.keep and errors == 0:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    elif errors:
        print(f"logs kept in {workdir}")
    sys.exit(0 if errors == 0 else 1)


def _gunicorn_worker_pids(stack: Stack) -> set[int]:
    """The pids of gunicorn's master's children (its workers)."""
    import psutil

    master = next(proc.pid for name, proc in stack.procs if name == "gunicorn")
    return {child.pid for child in psutil.Process(master).children()}


if __name__ == "__main__":
    main()
