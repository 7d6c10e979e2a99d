"""Restart PostgreSQL while customers browse, buy, call the API and the processor sends
webhooks: requests caught by the restart fail cleanly (a 503 page or problem response
with Retry-After, never a 500 or a traceback), and the same gunicorn and worker
processes recover by themselves, with nothing half-written.

The cluster is one of the test's own (initdb on a free port), so restarting it
disturbs nothing else; the app's schema and demo data are made by ``migrate`` and
``seed_demo`` as for a new installation.
"""

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import psycopg
import pytest
import requests

from tests.faults.conftest import SOAK_SECONDS
from tests.faults.shopper import Item, Shopper, ShopperError, ignored_event, post_webhook
from tests.faults.stack import LoadThreads, PostgresServer, wait_for

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres_server,
    pytest.mark.redis_server,
    pytest.mark.celery_worker,
]

BROWSING = ["/", "/products/", "/api/v1/products/", "/healthz"]
# The browsers are anonymous: the API allows an address 120 requests a minute
# (API_THROTTLE_ANON, docs/api.md), counted in the shared cache across gunicorn's
# workers. Each of the two browsers calls it at most once in this many seconds, so
# the load stays at 80 a minute, within the limit.
API_EVERY_SECONDS = 1.5
CUSTOMERS = [("alice@example.com", "alice-demo-pass"), ("bob@example.com", "bob-demo-pass")]


@dataclass(frozen=True)
class Answer:
    what: str
    status: int  # 0: no HTTP answer at all
    clean: bool  # a 2xx/3xx, a 503 that says so with Retry-After and no traceback, or a
    # 429 problem with Retry-After (a correct answer to too many requests)
    at: float


def judge(what: str, response: requests.Response) -> Answer:
    body = response.text or ""
    if response.status_code < 400:
        clean = "Traceback" not in body
    elif response.status_code == 503 and what == "health":
        clean = _json(response).get("status") == "fail"  # out of the load balancer's rotation
    elif response.status_code == 503:
        clean = (
            response.headers.get("Retry-After") == "5"
            and "Traceback" not in body
            and ("Back in a moment" in body or _problem_code(response) == "unavailable")
        )
    elif response.status_code == 429:
        clean = (
            response.headers.get("Content-Type") == "application/problem+json"
            and _problem_code(response) == "throttled"
            and response.headers.get("Retry-After", "").isdigit()
        )
    else:
        clean = False
    return Answer(what, response.status_code, clean, time.monotonic())


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _problem_code(response: requests.Response) -> str | None:
    return _json(response).get("code")


@pytest.fixture
def own_postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
        server.stop()
    finally:
        log = server.directory / "pg.log"
        if log.exists():
            print(log.read_text(errors="replace")[-3000:])
        server.remove()


def test_a_postgres_restart_under_load_fails_requests_cleanly_and_recovers(
    own_postgres, redis_server, stacks, app_env
):
    own_postgres.create_database("shop")
    database = own_postgres.url("shop")
    stack = stacks(app_env(database_url=database, broker_url=redis_server.url(0)))
    stack.manage("migrate", "--noinput")
    stack.manage("seed_demo")
    with psycopg.connect(database) as conn:  # one product from each USD seller
        # The demo's year of orders (refunded and cancelled ones included) is not ours.
        seeded = conn.execute("SELECT coalesce(max(id), 0) FROM marketplace_order").fetchone()[0]
        conn.execute("UPDATE marketplace_product SET stock = 100000 WHERE currency = 'USD'")
        rows = conn.execute(
            "SELECT DISTINCT ON (p.seller_id) p.id, p.slug FROM marketplace_product p"
            " WHERE p.currency = 'USD' AND p.is_active ORDER BY p.seller_id, p.id"
        ).fetchall()
    items = [Item(product_id, slug) for product_id, slug in rows]
    assert len(items) >= 2
    web, base = stack.web()
    stack.worker()

    answers: list[Answer] = []
    acknowledged: list[str] = []  # webhook events answered 200
    orders: list[int] = []
    stop = threading.Event()

    def browse() -> None:
        session = requests.Session()
        session.headers["X-Forwarded-Proto"] = "https"
        api_last = 0.0
        while not stop.is_set():
            for path in BROWSING:
                if path.startswith("/api/"):
                    if time.monotonic() - api_last < API_EVERY_SECONDS:
                        continue
                    api_last = time.monotonic()
                try:
                    response = session.get(base + path, timeout=30, allow_redirects=False)
                except requests.RequestException:
                    answers.append(Answer(path, 0, False, time.monotonic()))
                    continue
                answers.append(judge("health" if path == "/healthz" else path, response))

    def send_webhooks() -> None:
        while not stop.is_set():
            event_id = f"evt_restart_{uuid.uuid4().hex[:12]}"
            try:
                response = post_webhook(base, stack.env["SECRET_KEY"], ignored_event(event_id))
            except requests.RequestException:
                answers.append(Answer("webhook", 0, False, time.monotonic()))
                continue
            answers.append(judge("webhook", response))
            if response.status_code == 200:
                acknowledged.append(event_id)

    def buy(email: str, password: str) -> None:
        shopper = Shopper(base)
        while not stop.is_set():
            try:
                shopper.login(email, password)
                break
            except ShopperError:
                time.sleep(0.2)
        while not stop.is_set():
            try:
                orders.append(shopper.buy(items))
                answers.append(Answer("checkout", 200, True, time.monotonic()))
            except ShopperError as exc:
                clean = exc.status == 503
                answers.append(Answer("checkout", exc.status or 0, clean, time.monotonic()))
            except requests.RequestException:
                answers.append(Answer("checkout", 0, False, time.monotonic()))

    load = LoadThreads()
    for _ in range(2):
        load.start(browse)
    load.start(send_webhooks)
    for email, password in CUSTOMERS:
        load.start(buy, email, password)
    try:
        time.sleep(max(3.0, SOAK_SECONDS / 4))
        restart_started = time.monotonic()
        own_postgres.restart(down_for=2.0)
        restarted = time.monotonic()
        time.sleep(max(8.0, SOAK_SECONDS / 2))
    finally:
        stop.set()
        load.join(timeout=90)

    by_status = Counter((answer.what, answer.status) for answer in answers)
    print(f"restart took {restarted - restart_started:.1f} s; answers: {sorted(by_status.items())}")
    unclean = [answer for answer in answers if not answer.clean]
    assert not unclean, f"{len(unclean)} unclean answers, e.g. {unclean[:5]}"
    assert any(answer.status == 503 for answer in answers), "no request met the restart"
    # The same processes answer normally again, with no restart of theirs.
    assert web.running
    settled = [answer for answer in answers if answer.at > restarted + 5]
    assert settled and all(
        answer.status in (200, 302) or (answer.status == 429 and answer.clean) for answer in settled
    )
    assert orders, "no order was placed"

    # Nothing half-written: every event acknowledged is stored once, every placed order
    # is paid once (by the worker, which reconnected too), and the ledger balances.
    wait_for(
        lambda: _unpaid(database, orders) == 0,
        timeout=120,
        what="orders placed around the restart were not all paid",
    )
    with psycopg.connect(database) as conn:
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM payments_webhookevent"
            " WHERE event_id = ANY(%s)",
            [acknowledged],
        ).fetchone()
        captures = conn.execute(
            "SELECT reference_id, count(*) FROM payments_ledgertransaction"
            " WHERE kind = 'payment_captured' AND reference_id = ANY(%s) GROUP BY reference_id",
            [[str(order) for order in orders]],
        ).fetchall()
    assert stored == (len(acknowledged), len(acknowledged))
    assert len(captures) == len(orders) and {n for _, n in captures} == {1}
    assert _charged_but_unpaid(database, after_order=seeded) == 0
    assert "The ledger is consistent." in stack.manage("check_ledger")


def _unpaid(database: str, orders: list[int]) -> int:
    with psycopg.connect(database) as conn:
        return conn.execute(
            "SELECT count(*) FROM marketplace_order WHERE id = ANY(%s) AND status <> 'paid'",
            [orders],
        ).fetchone()[0]


def _charged_but_unpaid(database: str, *, after_order: int) -> int:
    """Orders placed in the test (after order ``after_order``), including those whose
    checkout a 503 interrupted, whose payment succeeded at the processor but that are
    not paid here."""
    with psycopg.connect(database) as conn:
        return conn.execute(
            "SELECT count(*) FROM marketplace_order o WHERE o.id > %s AND o.status <> 'paid'"
            " AND EXISTS (SELECT 1 FROM payments_paymentattempt a"
            "  JOIN payments_localpaymentintent i ON i.id = a.processor_payment_id"
            "  WHERE a.order_id = o.id AND i.status = 'succeeded')",
            [after_order],
        ).fetchone()[0]
