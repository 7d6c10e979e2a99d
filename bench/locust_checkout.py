"""Locust users for ``bench/checkout_http.py``, which runs one class at a time
(``locust -f bench/locust_checkout.py --headless CheckoutCustomer``).

``CheckoutCustomer``: each user logs in once as its own customer, then places
and pays orders in a loop with no wait time, the way a browser does it: for each
of the 3 sellers it opens a random product of theirs and adds one to the cart
(the form's htmx POST, answered with a message), opens the cart and the checkout
form, posts the delivery address, opens the payment page, posts a test card and
opens the order page. The order is paid only when the processor's event has been
processed by the Celery worker; until the order page says so, the user polls
the htmx status fragment as the page does (after the delay its ``hx-trigger`` says,
which grows from look to look; ``BENCH_POLL_SECONDS`` sets a fixed one instead)
until it answers with the paid page's main part (which htmx swaps in). Every
``BENCH_THREE_DS_EVERY``-th order (counted over all users) uses the card that
asks for the confirmation step. An order counts only when the order page says
"Thank you! Your payment was received".

``StaticClient``: each user asks for ``/livez`` in a loop.

Requests never follow redirects by themselves: each expected redirect is
checked, then its target requested, so every request is counted and timed.
The server runs as in production behind a TLS proxy (``DEBUG=0``,
``USE_X_FORWARDED_PROTO=1``), so every request says ``X-Forwarded-Proto: https``
and every form post carries the ``Origin`` a browser would send.

At the end the per-order timings, the errors and locust's per-request
statistics are written as JSON to ``BENCH_RESULTS``.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import random
import re
import resource
import time
from http.cookiejar import DefaultCookiePolicy

import gevent
from locust import FastHttpUser, constant, events, task

# 0: wait between status polls as the page does (its hx-trigger's delay, growing).
POLL_SECONDS = float(os.environ.get("BENCH_POLL_SECONDS", "0"))
LIVE_STATUS = re.compile(r'hx-get="(?P<url>[^"]+)" hx-trigger="load delay:(?P<delay>[0-9.]+)s"')
PAID_TIMEOUT = float(os.environ.get("BENCH_PAID_TIMEOUT", "30"))
THREE_DS_EVERY = int(os.environ.get("BENCH_THREE_DS_EVERY", "10"))
PAID_TEXT = "Thank you! Your payment was received"
CARD_PAYS = "4242 4242 4242 4242"
CARD_CONFIRMS = "4000 0025 0000 3155"

DATA: dict = {}
if os.environ.get("BENCH_DATA"):
    with open(os.environ["BENCH_DATA"]) as f:
        DATA = json.load(f)

_customer_numbers = itertools.count()
_order_numbers = itertools.count(1)
orders: list[dict] = []  # one per paid order: start, end (epoch s), order id, 3-D Secure
errors: list[str] = []
run = {"start": 0.0, "end": 0.0, "cpu_start": 0.0}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class FlowError(Exception):
    pass


class _BehindTLSProxy(DefaultCookiePolicy):
    """Send the ``Secure`` cookies (session, CSRF) over the plain HTTP hop to gunicorn:
    the proxy in front of it would have received them over HTTPS."""

    def return_ok_secure(self, cookie, request) -> bool:
        return True


class _Base(FastHttpUser):
    abstract = True
    wait_time = constant(0)
    default_headers = {"X-Forwarded-Proto": "https"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client.cookiejar.set_policy(_BehindTLSProxy())

    def _csrf(self) -> str:
        for cookie in self.client.cookiejar:
            if cookie.name == "csrftoken":
                return cookie.value
        raise FlowError("no csrftoken cookie")

    def call(
        self,
        method: str,
        path: str,
        name: str,
        status: int,
        *,
        data: dict | None = None,
        headers: dict | None = None,
        location: str | None = None,
        contains: str | None = None,
    ):
        """One request whose status (and redirect target, or text) must be as expected."""
        headers = dict(headers or {})
        if method == "POST":
            headers["Origin"] = self.host.replace("http://", "https://", 1)
            data = {"csrfmiddlewaretoken": self._csrf(), **(data or {})}
        problem = ""
        with self.client.request(
            method,
            path,
            name=name,
            data=data,
            headers=headers,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if response.status_code != status:
                problem = f"{method} {name}: {response.status_code}, expected {status}"
                text = response.text or ""
                title = re.search(r"<title>(.*?)</title>", text, re.S)
                if title:
                    problem += f" ({title.group(1).strip()})"
            elif location is not None and not re.fullmatch(
                location, response.headers.get("Location", "")
            ):
                problem = f"{method} {name}: redirect to {response.headers.get('Location')!r}"
            elif contains is not None and contains not in (response.text or ""):
                problem = f"{method} {name}: no {contains!r} in the page"
            if problem:
                response.failure(problem)
            else:
                response.success()
        if problem:
            raise FlowError(problem)
        return response


class CheckoutCustomer(_Base):
    def on_start(self) -> None:
        self.customer = DATA["customers"][next(_customer_numbers) % len(DATA["customers"])]
        self.logged_in = False

    def _log_in(self) -> None:
        self.call("GET", "/accounts/login/", "GET /accounts/login/", 200)
        self.call(
            "POST",
            "/accounts/login/",
            "POST /accounts/login/",
            302,
            data={"username": self.customer, "password": DATA["password"], "next": "/"},
            location="/",
        )
        self.logged_in = True

    @task
    def place_and_pay_an_order(self) -> None:
        started = time.time()
        try:
            if not self.logged_in:
                self._log_in()
                started = time.time()
            order_id, three_ds = self._order()
        except FlowError as exc:
            errors.append(str(exc))
            gevent.sleep(0.5)  # an error does not become a flood of them
            return
        orders.append(
            {"start": started, "end": time.time(), "order": order_id, "three_ds": three_ds}
        )

    def _order(self) -> tuple[int, bool]:
        for products in DATA["products_by_seller"]:
            product = random.choice(products)
            page = f"/products/{product['slug']}/"
            self.call("GET", page, "GET /products/[slug]/", 200)
            # The page's form posts with htmx: the answer is the message and the new
            # count, not the page again.
            self.call(
                "POST",
                "/cart/add/",
                "POST /cart/add/ (htmx)",
                200,
                data={"product": product["id"], "quantity": "1", "next": page},
                headers={"HX-Request": "true"},
                contains="is in your cart",
            )
        self.call("GET", "/cart/", "GET /cart/", 200)
        page = self.call("GET", "/checkout/USD/", "GET /checkout/USD/", 200)
        token = re.search(r'name="submission_token" value="([^"]+)"', page.text or "")
        if token is None:
            raise FlowError("GET /checkout/USD/: no submission token in the form")
        response = self.call(
            "POST",
            "/checkout/USD/",
            "POST /checkout/USD/",
            302,
            data={
                "name": "Bench Customer",
                "line1": "221 Larkspur Lane",
                "line2": "",
                "city": "Portland",
                "postal_code": "97201",
                "country": "US",
                "submission_token": token.group(1),
            },
            location=r"/orders/\d+/pay/",
        )
        order_id = int(re.search(r"/orders/(\d+)/", response.headers["Location"]).group(1))
        order = f"/orders/{order_id}/"
        self.call("GET", f"{order}pay/", "GET /orders/[id]/pay/", 200)
        three_ds = THREE_DS_EVERY > 0 and next(_order_numbers) % THREE_DS_EVERY == 0
        card = {"card_number": CARD_CONFIRMS if three_ds else CARD_PAYS}
        card |= {"expiry": "12/34", "cvc": "123"}
        if three_ds:
            confirm = f"{order}pay/confirm/"
            self.call(
                "POST",
                f"{order}pay/",
                "POST /orders/[id]/pay/ (3-D Secure card)",
                302,
                data=card,
                location=re.escape(confirm),
            )
            self.call("GET", confirm, "GET /orders/[id]/pay/confirm/", 200)
            self.call(
                "POST",
                confirm,
                "POST /orders/[id]/pay/confirm/",
                302,
                data={"approve": "yes"},
                location=re.escape(order),
            )
        else:
            self.call(
                "POST",
                f"{order}pay/",
                "POST /orders/[id]/pay/",
                302,
                data=card,
                location=re.escape(order),
            )
        page = self.call("GET", order, "GET /orders/[id]/", 200)
        deadline = time.monotonic() + PAID_TIMEOUT
        while PAID_TEXT not in (page.text or ""):
            if "confirming it" not in (page.text or ""):
                raise FlowError(f"order {order_id}: neither paid nor being confirmed")
            if time.monotonic() > deadline:
                raise FlowError(f"order {order_id}: not paid after {PAID_TIMEOUT:.0f} s")
            # As the page's htmx does: wait what its trigger says, then ask its URL.
            poll = LIVE_STATUS.search(page.text or "")
            if poll is None:
                raise FlowError(f"order {order_id}: the page does not poll its status")
            url, delay = html.unescape(poll.group("url")), float(poll.group("delay"))
            gevent.sleep(POLL_SECONDS or delay)
            page = self.call(
                "GET", url, "GET /orders/[id]/ (htmx poll)", 200, headers={"HX-Request": "true"}
            )
        return order_id, three_ds


class StaticClient(_Base):
    @task
    def livez(self) -> None:
        self.call("GET", "/livez", "GET /livez", 200)


@events.test_start.add_listener
def _started(environment, **kwargs) -> None:
    run["start"] = time.time()
    run["cpu_start"] = _cpu_seconds()


@events.test_stop.add_listener
def _stopped(environment, **kwargs) -> None:
    run["end"] = time.time()
    path = os.environ.get("BENCH_RESULTS")
    if not path:
        return
    stats = []
    for entry in environment.stats.entries.values():
        stats.append(
            {
                "name": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "p50_ms": entry.get_response_time_percentile(0.5),
                "p95_ms": entry.get_response_time_percentile(0.95),
                "p99_ms": entry.get_response_time_percentile(0.99),
                "max_ms": entry.max_response_time,
            }
        )
    total = environment.stats.total
    failures = [
        {"name": e.name, "method": e.method, "error": str(e.error), "occurrences": e.occurrences}
        for e in environment.stats.errors.values()
    ]
    with open(path, "w") as f:
        json.dump(
            {
                "start": run["start"],
                "end": run["end"],
                "cpu_seconds": _cpu_seconds() - run["cpu_start"],
                "orders": orders,
                "errors": errors,
                "requests": total.num_requests,
                "failures": total.num_failures,
                "failure_details": failures,
                "request_stats": sorted(stats, key=lambda s: s["name"]),
                "request_p50_ms": total.get_response_time_percentile(0.5),
                "request_p95_ms": total.get_response_time_percentile(0.95),
                "request_p99_ms": total.get_response_time_percentile(0.99),
            },
            f,
        )
