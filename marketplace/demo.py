"""Demo data for a fresh install: an operator, sellers in three currencies,
customers, a catalog and a year of trading. Running it again changes nothing that exists.

The year of history (``_History``) is written through the same services as the
live site, with the local processor: orders paid by test card, shipped and
delivered, holds released, monthly payout runs, refunds (one after its payout),
refund requests, a dispute and one failed payout. Each event runs with
``timezone.now()`` set to when it happened (``demo_clock``), so every date the
services write (orders, ledger transactions, payouts, refunds) tells the same
story; no amount and no date is written by hand.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Seller, User
from marketplace.demo_revenue import demo_revenue_seed
from marketplace.kernel.currencies import to_minor_units
from marketplace.kernel.errors import InvalidState
from marketplace.models import Category, Order, OrderLine, Product, SellerOrder
from marketplace.services.fulfilment import seller_order_deliver, seller_order_ship
from marketplace.services.orders import (
    CartItem,
    ShippingAddress,
    place_order,
    seller_order_cancel,
)
from marketplace.services.products import product_create, product_update
from payments.collection.checkout import local_card_authenticate, local_card_pay, payment_start
from payments.collection.onboarding import seller_account_sync, seller_onboarding_start
from payments.collection.refund_requests import (
    refund_request_approve,
    refund_request_create,
    refund_request_decline,
)
from payments.collection.refunds import (
    REFUNDABLE_ORDER_STATUSES,
    order_refund_barred,
    refund_create,
    refund_submit,
)
from payments.models import (
    CommissionRule,
    LocalAccount,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutPolicy,
    RefundRequest,
)
from payments.payouts.controls import payout_mark_paid, payout_retry
from payments.payouts.holds import holds_release_due
from payments.payouts.runs import run_payouts
from payments.processors.base import CardDeclined
from payments.processors.local import (
    CARD_DECLINED,
    CARD_DISPUTED,
    CARD_REQUIRES_ACTION,
    CARD_SUCCEEDS,
    LocalProcessor,
)

OPERATOR = ("operator@example.com", "operator-demo-pass", "Olivia Operator")
CUSTOMERS = [
    ("alice@example.com", "alice-demo-pass", "Alice Customer"),
    ("bob@example.com", "bob-demo-pass", "Bob Customer"),
]
# (email, password, shop name, slug, country, currency)
SELLERS = [
    ("books@example.com", "books-demo-pass", "Northwind Books", "northwind-books", "US", "USD"),
    ("atelier@example.com", "atelier-demo-pass", "Atelier Lumière", "atelier-lumiere", "FR", "EUR"),
    ("kyoto@example.com", "kyoto-demo-pass", "Kyoto Craft House", "kyoto-craft-house", "JP", "JPY"),
    ("harbor@example.com", "harbor-demo-pass", "Harbor Ceramics", "harbor-ceramics", "US", "USD"),
]
# (name, slug, parent slug)
CATEGORIES = [
    ("Books", "books", None),
    ("Fiction", "fiction", "books"),
    ("Non-fiction", "non-fiction", "books"),
    ("Home & Kitchen", "home-kitchen", None),
    ("Tableware", "tableware", "home-kitchen"),
    ("Textiles", "textiles", "home-kitchen"),
    ("Art & Prints", "art-prints", None),
    ("Stationery", "stationery", None),
]
# seller slug -> [(title, category slug, price as typed, stock, featured, description)]
PRODUCTS = {
    "northwind-books": [
        (
            "The Lighthouse Keeper",
            "fiction",
            "18.99",
            12,
            True,
            "A novel of storms, solitude and a letter that arrives forty years late.",
        ),
        (
            "Salt and Stone",
            "fiction",
            "14.50",
            7,
            False,
            "Short stories from a fishing village on the Maine coast.",
        ),
        (
            "The Quiet Orbit",
            "fiction",
            "22.00",
            3,
            False,
            "Hard science fiction about the last crewed station around Saturn.",
        ),
        (
            "A Field Guide to Clouds",
            "non-fiction",
            "29.95",
            20,
            True,
            "Every cloud type, photographed and explained.",
        ),
        (
            "Bread at Home",
            "non-fiction",
            "34.00",
            9,
            False,
            "Sourdough, rye and flatbreads for a home oven.",
        ),
        (
            "Maps of Forgotten Cities",
            "non-fiction",
            "45.00",
            4,
            False,
            "Historic city plans with essays on how each city changed.",
        ),
        (
            "Pocket Notebook, Dot Grid",
            "stationery",
            "6.75",
            150,
            False,
            "A5, 96 pages of 100 gsm paper, lies flat.",
        ),
        (
            "Letterpress Bookmark Set",
            "stationery",
            "9.99",
            0,
            False,
            "Five bookmarks printed on cotton card. Back in stock soon.",
        ),
    ],
    "atelier-lumiere": [
        (
            "Linen Tea Towel, Indigo",
            "textiles",
            "18.00",
            40,
            True,
            "Stonewashed French linen, hand-dyed with indigo.",
        ),
        (
            "Linen Table Runner",
            "textiles",
            "42.50",
            10,
            False,
            "200 cm runner in natural flax linen.",
        ),
        (
            "Stoneware Bowl",
            "tableware",
            "24.00",
            16,
            True,
            "Wheel-thrown in Provence, glazed in sea green.",
        ),
        (
            "Espresso Cups, Set of Two",
            "tableware",
            "32.00",
            8,
            False,
            "Matte white porcelain with a speckled rim.",
        ),
        (
            "Serving Board, Olive Wood",
            "tableware",
            "55.00",
            5,
            False,
            "Cut from one piece of Provençal olive wood.",
        ),
        (
            "Riviera Poster, A3",
            "art-prints",
            "27.90",
            25,
            False,
            "Giclée print on 300 gsm archival paper.",
        ),
        (
            "Botanical Print, Lavender",
            "art-prints",
            "35.00",
            12,
            False,
            "Hand-coloured etching, limited edition of 100.",
        ),
        (
            "Wax Seal Kit",
            "stationery",
            "19.90",
            30,
            False,
            "Brass stamp, three sticks of wax and a spoon.",
        ),
    ],
    "kyoto-craft-house": [
        ("Hinoki Chopsticks", "tableware", "2800", 60, True, "Hand-planed cypress, five pairs."),
        (
            "Tenugui Cloth, Waves",
            "textiles",
            "1500",
            80,
            False,
            "Hand-dyed cotton tenugui with a seigaiha pattern.",
        ),
        ("Matcha Bowl", "tableware", "6500", 6, True, "Raku-fired chawan from a Kyoto kiln."),
        ("Washi Notebook", "stationery", "1200", 45, False, "Hand-bound with paper from Echizen."),
        (
            "Woodblock Print, Kamo River",
            "art-prints",
            "9800",
            3,
            False,
            "Traditional ukiyo-e technique, signed.",
        ),
        ("Furoshiki, Indigo", "textiles", "3200", 20, False, "Wrapping cloth, 70 cm square."),
        ("Cast Iron Teapot", "tableware", "14500", 4, False, "Nambu tekki, 0.6 litres."),
        ("Brush Pen Set", "stationery", "2200", 0, False, "Three brush pens for calligraphy."),
    ],
    "harbor-ceramics": [
        (
            "Speckled Mug",
            "tableware",
            "18.00",
            50,
            True,
            "350 ml stoneware mug with a speckled glaze.",
        ),
        ("Pour-over Coffee Set", "tableware", "64.00", 12, False, "Dripper, carafe and two cups."),
        (
            "Salt Cellar",
            "tableware",
            "22.50",
            30,
            False,
            "Lidded salt cellar with an ash-wood spoon.",
        ),
        (
            "Dinner Plates, Set of Four",
            "tableware",
            "96.00",
            6,
            False,
            "27 cm plates, dishwasher safe.",
        ),
        ("Bud Vase", "home-kitchen", "28.00", 20, False, "Small vase for a single stem."),
        ("Ceramic Planter", "home-kitchen", "45.00", 10, False, "Planter with a drainage saucer."),
        (
            "Stoneware Candle",
            "home-kitchen",
            "32.00",
            25,
            False,
            "Soy wax candle in a reusable cup.",
        ),
        (
            "Glaze Study Print",
            "art-prints",
            "15.00",
            40,
            False,
            "A3 print of our glaze test tiles.",
        ),
    ],
}
# (name, scope, target slug, percentage in basis points, fixed fee typed, currency)
COMMISSION_RULES = [
    ("Platform default", "default", None, 1000, None, ""),
    ("Platform default, USD", "default", None, 1000, "0.30", "USD"),
    ("Platform default, EUR", "default", None, 1000, "0.25", "EUR"),
    ("Art & Prints", "category", "art-prints", 1500, None, ""),
    ("Kyoto Craft House launch rate", "seller", "kyoto-craft-house", 800, None, ""),
]


@dataclass
class DemoSeedResult:
    created: list[str] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)  # role, email, password


def _user(email: str, password: str, full_name: str, result: DemoSeedResult) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = account_services.user_sign_up(email=email, password=password, full_name=full_name)
        # ``date_joined`` defaults to the real time (bound at import): the demo clock's.
        User.objects.filter(pk=user.pk).update(date_joined=timezone.now())
        result.created.append(f"user {email}")
    return user


@transaction.atomic
def demo_seed() -> DemoSeedResult:
    """Create the demo data that is missing; existing rows are left as they are.

    On a database without the demo customers' orders (and with the local
    processor, which needs no network), the shop opens a year ago and trades
    until now (``_History``). All of it is one database transaction.
    """
    result = DemoSeedResult()
    with in_process_worker() as work:
        now = timezone.now()
        opened = _history_start(now) if _history_wanted() else None
        with demo_clock(opened) if opened else nullcontext() as clock:
            _shop(result)
            work()
            if clock is not None:
                _History(clock=clock, work=work, result=result, until=now).run()
        _demo_payout_schedule(result)

        demo_revenue_seed(
            operator=User.objects.filter(email=OPERATOR[0]).first(), created=result.created
        )
    return result


def _shop(result: DemoSeedResult) -> None:
    """The operator, customers, categories, sellers, products and commission rules."""
    operator = _user(*OPERATOR, result)
    if not operator.is_staff:
        account_services.operator_grant(user=operator)
    result.logins.append(("operator", OPERATOR[0], OPERATOR[1]))

    for email, password, full_name in CUSTOMERS:
        _user(email, password, full_name, result)
        result.logins.append(("customer", email, password))

    categories: dict[str, Category] = {}
    for position, (name, slug, parent_slug) in enumerate(CATEGORIES):
        category, created = Category.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "parent": categories.get(parent_slug) if parent_slug else None,
                "position": position,
            },
        )
        categories[slug] = category
        if created:
            result.created.append(f"category {slug}")

    for email, password, shop, slug, country, currency in SELLERS:
        user = _user(email, password, shop, result)
        seller = Seller.objects.filter(user=user).first() or account_services.seller_become(
            user=user, display_name=shop, slug=slug, country=country, default_currency=currency
        )
        if currency == "JPY":
            # Paid by bank transfer: the operator pays each run's CSV and marks it paid.
            _manual_payouts(seller, result)
        elif not seller.payout_account_id:
            _onboard(seller)
        result.logins.append(("seller", email, password))

        existing = set(Product.objects.filter(seller=seller).values_list("title", flat=True))
        for title, category_slug, price, stock, featured, description in PRODUCTS[slug]:
            if title in existing:
                continue
            product = product_create(
                seller=seller,
                title=title,
                category=categories[category_slug],
                description=description,
                price_minor=to_minor_units(price, currency),
                currency=currency,
                stock=stock,
            )
            if featured:
                product.is_featured = True
                product.save(update_fields=["is_featured"])
            result.created.append(f"product {product.slug}")

    _commission_rules(categories, result)


def _demo_payout_schedule(result: DemoSeedResult) -> None:
    """Demo mode: run payouts every 5 minutes, so a fresh demo pays its sellers soon."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.MINUTES)
    _, created = PeriodicTask.objects.get_or_create(
        name="Pay sellers (demo: every 5 minutes)",
        defaults={"task": "payments.tasks.run_payouts_task", "interval": interval},
    )
    if created:
        result.created.append("demo payout schedule")


def _manual_payouts(seller: Seller, result: DemoSeedResult) -> None:

    if not seller.has_bank_details:
        seller.bank_account_holder = seller.display_name
        seller.bank_account_number = "1234567"
        seller.bank_routing_code = "0005-123"  # bank and branch code
        seller.save(
            update_fields=["bank_account_holder", "bank_account_number", "bank_routing_code"]
        )
    _, created = PayoutPolicy.objects.get_or_create(
        seller=seller, defaults={"method": PayoutPolicy.Method.MANUAL}
    )
    if created:
        result.created.append(f"manual payout policy for {seller.slug}")


def _onboard(seller: Seller) -> None:
    """Connect the seller's payout account at the processor, as they would on "Get paid"."""
    seller_onboarding_start(seller=seller, refresh_url="/", return_url="/")
    seller.refresh_from_db()
    if settings.PAYMENTS_PROCESSOR == "local":
        LocalProcessor().account_complete_onboarding(account_id=seller.payout_account_id)
        seller_account_sync(processor_name="local", account_id=seller.payout_account_id)


def _commission_rules(categories: dict[str, Category], result: DemoSeedResult) -> None:
    for name, scope, target, bps, fee, currency in COMMISSION_RULES:
        if CommissionRule.objects.filter(name=name).exists():
            continue
        CommissionRule.objects.create(
            name=name,
            scope=scope,
            category=categories[target] if scope == "category" and target else None,
            seller=Seller.objects.get(slug=target) if scope == "seller" else None,
            percentage_bps=bps,
            fixed_fee_minor=to_minor_units(fee, currency) if fee else 0,
            currency=currency,
            # Its default is the real time (bound at import): in force from the demo
            # clock's now, so the back-dated orders find it.
            active_from=timezone.now(),
        )
        result.created.append(f"commission rule {name}")


# --- The clock and the worker of the history ---------------------------------------------


class DemoClock:
    """What ``django.utils.timezone.now()`` answers while the history is written."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@contextmanager
def demo_clock(at: datetime) -> Iterator[DemoClock]:
    """Set the time that ``timezone.now()`` tells, until the block ends (``clock.at``
    moves it). The tests' time-machine is a test dependency only; here it is enough
    to replace ``timezone.now``, which every service, ``auto_now_add`` field and
    ``timezone.localdate()`` reads through the module. (The two model defaults bound
    to the function at import, ``User.date_joined`` and ``CommissionRule.active_from``,
    are given explicitly.) Webhook signatures keep the real time on both sides."""
    clock = DemoClock(at)
    real = timezone.now
    timezone.now = clock.now  # type: ignore[assignment]
    try:
        yield clock
    finally:
        timezone.now = real  # type: ignore[assignment]


# The email tasks (receipts, "your payout has arrived", ...: ``<event>_notify_task``):
# about the history's events, a year late, they would tell no one anything.
EMAIL_TASK_SUFFIX = "_notify_task"


@contextmanager
def in_process_worker() -> Iterator[Callable[[], None]]:
    """Yield ``work()``: run now, in this process, the tasks queued for after the commit
    (the processor's event deliveries, webhook processing, payout sends, emails), as
    the Celery worker would once the transaction commits, and forget them, so that
    the commit queues nothing more. Inside a transaction (``demo_seed`` is one), so
    each event of the history runs with its effects, at its time, and the whole seed
    stays one fast commit. Emails about the history are not sent (nor rendered), and
    its queries are not kept in memory as ``DEBUG`` would."""
    from marketplace.celery import app

    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise InvalidState("The demo's worker runs inside a transaction.")
    first = len(connection.run_on_commit)  # queued before the seed: left to the commit

    def work() -> None:
        # Tasks queue more tasks (an event delivered queues its processing): until none.
        while len(connection.run_on_commit) > first:
            _savepoints, callback, _robust = connection.run_on_commit.pop(first)
            # enqueue_on_commit queues ``partial(enqueue, task_name, *args)``.
            queued = callback.args[0] if isinstance(callback, partial) and callback.args else ""
            if not str(queued).endswith(EMAIL_TASK_SUFFIX):
                callback()

    eager = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    trace = logging.getLogger("celery.app.trace")  # a line per task: a thousand of them
    level = trace.level
    trace.setLevel(logging.WARNING)
    try:
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend", DEBUG=False
        ):
            yield work
            work()
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = eager
        trace.setLevel(level)


# --- A year of history ---------------------------------------------------------------------

HISTORY_DAYS = 365
HISTORY_SEED = 1859  # the same history every time
# Where the demo customers' parcels go.
ADDRESSES = {
    "alice@example.com": ShippingAddress(
        "Alice Customer", "12 Harbor Street", "Portland", "04101", "US"
    ),
    "bob@example.com": ShippingAddress("Bob Customer", "3 Rue des Lilas", "Lyon", "69003", "FR"),
}
PAYOUT_DAY = 1  # sellers are paid on the first of the month
# Sales per seller per day: about one a week (~155 orders in the year), busier as the
# year goes on and before Christmas. Each is paid, delivered and released through
# the services (~35 ms): more would take the seed past its budget of a few seconds.
SALES_A_DAY = 0.07
SALES_GROWTH = 0.04
SALES_HOLIDAYS = 0.07
REFUND_REASONS = [
    "Arrived with a chipped rim",
    "Damaged in transit",
    "Not as pictured",
    "Wrong colour sent",
]


def _history_wanted() -> bool:
    if settings.PAYMENTS_PROCESSOR != "local":
        return False  # a real processor's test mode would get a year of API calls
    customers = [email for email, _, _ in CUSTOMERS]
    return not Order.objects.filter(customer__email__in=customers).exists()


def _history_start(now: datetime) -> datetime:
    """When the shop opened: midnight UTC, a few days before the history's first sale."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=HISTORY_DAYS + 3)


Action = Callable[..., Any]


class _History:
    """A year of trading, written event by event in time order: each event runs with
    the clock at its time, then the work it queued (the processor's events, payout
    sends) runs as the worker would, still at that time."""

    def __init__(
        self,
        *,
        clock: DemoClock,
        work: Callable[[], None],
        result: DemoSeedResult,
        until: datetime,
    ) -> None:
        self.clock, self.work, self.result = clock, work, result
        self.rng = random.Random(HISTORY_SEED)
        self.first_day = clock.at + timedelta(days=3)
        self.end = until
        self.events: list[tuple[datetime, int, Action, tuple[Any, ...]]] = []
        self.tickets = itertools.count()  # ties in time keep the order they were planned in
        self.operator = User.objects.get(email=OPERATOR[0])
        self.customers = [User.objects.get(email=email) for email, _, _ in CUSTOMERS]
        self.sellers = {seller.slug: seller for seller in Seller.objects.all()}
        self.catalog_stock = {row[0]: row[3] for rows in PRODUCTS.values() for row in rows}
        # What sells: the demo catalog's products that are in stock.
        self.shelves = {
            slug: list(
                Product.objects.filter(seller__slug=slug, title__in=[r[0] for r in rows])
                .filter(stock__gt=0)
                .order_by("pk")
            )
            for slug, rows in PRODUCTS.items()
        }
        self.sales = 0

    # --- the timeline ----------------------------------------------------------------

    def at(self, when: datetime, action: Action, *args: Any) -> None:
        heapq.heappush(self.events, (when, next(self.tickets), action, args))

    def run(self) -> None:
        self.plan()
        while self.events:
            when, _, action, args = heapq.heappop(self.events)
            if when >= self.end:
                continue  # still to come
            self.clock.at = when
            action(*args)
            self.work()
        self.result.created.append(f"{self.sales} demo orders over {HISTORY_DAYS} days")

    def day(self, days_ago: float, hour: int = 10, minute: int = 0) -> datetime:
        """A time ``days_ago`` days before today, at ``hour``:``minute`` (UTC)."""
        today = self.end.replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=days_ago) + timedelta(hours=hour, minutes=minute)

    def plan(self) -> None:
        rng = self.rng
        for n in range(HISTORY_DAYS + 1):
            date = self.first_day + timedelta(days=n)
            if date.weekday() == 0:  # beat releases holds hourly; weekly is enough here
                self.at(date + timedelta(hours=5), self.release_holds)
            if date.day == PAYOUT_DAY:
                self.at(date + timedelta(hours=6), self.pay_sellers)
            busy = SALES_A_DAY + SALES_GROWTH * n / HISTORY_DAYS
            busy += SALES_HOLIDAYS if (date.month, date.day) >= (11, 20) else 0
            for slug in PRODUCTS:
                if rng.random() < busy:
                    minute = rng.randint(8 * 60, 22 * 60)
                    self.at(date + timedelta(minutes=minute), self.sale, slug)
        # The stories every demo has, at fixed days before today.
        self.at(self.day(300, 11), self.sale, "northwind-books", CARD_DECLINED)
        self.at(self.day(280, 16), self.sale, "atelier-lumiere", CARD_REQUIRES_ACTION)
        self.at(self.day(160, 9, 30), self.refund_after_payout)
        # A payout run about eight months ago meets Harbor's account under review.
        review = self.day(230, 5, 50).replace(day=PAYOUT_DAY)
        self.at(review, self.account_under_review, "harbor-ceramics")
        self.at(self.day(120, 14), self.kiln_accident)
        self.at(self.day(75, 18), self.declined_refund_request)
        self.at(self.day(18, 15), self.sale, "harbor-ceramics", CARD_DISPUTED)
        self.at(self.day(2, 20), self.waiting_refund_request)
        self.at(self.end - timedelta(minutes=30), self.restock)
        self.at(self.end - timedelta(minutes=20), self.unpaid_order)

    # --- sales and fulfilment ----------------------------------------------------------

    def sale(
        self,
        slug: str,
        card: str = CARD_SUCCEEDS,
        items: list[tuple[str, int]] | None = None,
        customer: User | None = None,
    ) -> Order:
        """A customer checks out: some of the seller's products (and, a quarter of the
        time, one of the other US shop's: one order, two sellers) and pays by card."""
        rng = self.rng
        if items is None:
            picked = rng.sample(self.shelves[slug], k=rng.choice([1, 1, 1, 2]))
            other = US_NEIGHBOURS.get(slug)
            if other and rng.random() < 0.25:
                picked.append(rng.choice(self.shelves[other]))
            chosen = [(product, rng.choice([1, 1, 1, 2])) for product in picked]
        else:
            chosen = [(Product.objects.get(title=title), quantity) for title, quantity in items]
        customer = customer or rng.choice(self.customers)
        for product, quantity in chosen:
            self.restock_for(product, quantity)
        order = place_order(
            customer=customer,
            cart_items=[CartItem(product.pk, quantity) for product, quantity in chosen],
            shipping=ADDRESSES[customer.email],
        )
        self.sales += 1
        self.pay(order, card)
        for seller_order in order.seller_orders.order_by("pk"):
            self.fulfil(seller_order)
        return order

    def pay(self, order: Order, card: str) -> None:
        """The payment page: a test card; after a decline, the customer's other card."""
        attempt = payment_start(order=order)
        try:
            attempt = local_card_pay(attempt=attempt, card_number=card)
        except CardDeclined:
            self.work()
            self.clock.at += timedelta(minutes=2)
            attempt = local_card_pay(attempt=payment_start(order=order), card_number=CARD_SUCCEEDS)
        if card == CARD_REQUIRES_ACTION:
            self.clock.at += timedelta(seconds=40)
            local_card_authenticate(attempt=attempt, approve=True)

    def fulfil(self, seller_order: SellerOrder) -> None:
        """The seller ships in a day or two; the parcel arrives days later. Now and then
        something goes wrong after that: a refund request, a partial refund, a lost parcel."""
        rng = self.rng
        shipped = self.clock.at + timedelta(hours=rng.randint(12, 60))
        delivered = shipped + timedelta(days=rng.randint(2, 6), hours=rng.randint(0, 8))
        self.at(shipped, self.ship, seller_order.pk)
        self.at(delivered, self.deliver, seller_order.pk)
        later = delivered + timedelta(days=rng.randint(1, 9), hours=rng.randint(0, 10))
        roll = rng.random()
        if roll < 0.04:
            self.at(later, self.refund_request, seller_order.pk)
        elif roll < 0.07:
            self.at(later, self.goodwill_refund, seller_order.pk)
        elif roll < 0.08:
            self.at(shipped + timedelta(days=14), self.lost_parcel, seller_order.pk)

    def ship(self, seller_order_id: int) -> None:
        seller_order = SellerOrder.objects.select_related("seller").get(pk=seller_order_id)
        if seller_order.status == SellerOrder.Status.PAID:
            seller_order_ship(
                seller_order=seller_order,
                seller=seller_order.seller,
                tracking_number=f"DM{seller_order.pk:06d}{self.rng.randint(100, 999)}",
            )

    def deliver(self, seller_order_id: int) -> None:
        seller_order = SellerOrder.objects.select_related("seller").get(pk=seller_order_id)
        if seller_order.shipped_at and not seller_order.delivered_at:
            seller_order_deliver(seller_order=seller_order, seller=seller_order.seller)

    def restock_for(self, product: Product, quantity: int) -> None:
        """The seller restocks what is running out (the catalog's stock again)."""
        if Product.objects.filter(pk=product.pk, stock__lt=quantity).exists():
            product.refresh_from_db()
            product_update(
                product=product,
                seller=product.seller,
                stock=product.stock + quantity + self.catalog_stock[product.title],
            )

    def restock(self) -> None:
        """Today: every product has the catalog's stock again."""
        for product in Product.objects.filter(title__in=self.catalog_stock).select_related(
            "seller"
        ):
            if product.stock != self.catalog_stock[product.title]:
                product_update(
                    product=product, seller=product.seller, stock=self.catalog_stock[product.title]
                )

    # --- refunds -----------------------------------------------------------------------

    def _refundable_line(self, seller_order_id: int) -> OrderLine | None:
        """The seller order's first line with nothing refunded or asked for, if its
        order can still be refunded (paid, not disputed)."""
        line = (
            OrderLine.objects.filter(
                seller_order_id=seller_order_id, refunded_minor=0, refund_requests__isnull=True
            )
            .select_related("order", "seller_order__seller__user")
            .order_by("pk")
            .first()
        )
        if line is None or line.order.status not in REFUNDABLE_ORDER_STATUSES:
            return None
        return None if order_refund_barred(line.order_id) else line

    def refund_request(self, seller_order_id: int) -> None:
        """The customer asks for a refund of an item; the seller approves the next day."""
        line = self._refundable_line(seller_order_id)
        if line is not None:
            request = refund_request_create(
                customer=line.order.customer,
                order_line=line,
                reason=self.rng.choice(REFUND_REASONS),
            )
            decided = self.clock.at + timedelta(days=1, hours=self.rng.randint(1, 8))
            self.at(decided, self.approve, request.pk)

    def approve(self, request_id: int) -> None:
        request = RefundRequest.objects.select_related(
            "order_line__seller_order__seller__user"
        ).get(pk=request_id)
        if order_refund_barred(request.order_line.order_id) is None:
            refund_request_approve(
                request=request,
                by=request.order_line.seller_order.seller.user,
                note="Sorry about that: refunded in full.",
            )

    def goodwill_refund(self, seller_order_id: int) -> None:
        """A partial refund agreed with the customer: half of one item's price."""
        line = self._refundable_line(seller_order_id)
        if line is not None:
            refund = refund_create(
                order=line.order,
                order_line=line,
                amount_minor=line.gross_minor // 2,
                reason="Small scratch; half refunded as agreed with the customer",
                requested_by=line.seller_order.seller.user,
            )
            refund_submit(refund=refund)

    def lost_parcel(self, seller_order_id: int) -> None:
        """The parcel never arrived: the seller's whole part is refunded."""
        seller_order = SellerOrder.objects.select_related("order", "seller__user").get(
            pk=seller_order_id
        )
        if seller_order.delivered_at or self._refundable_line(seller_order_id) is None:
            return
        refund = refund_create(
            order=seller_order.order,
            seller_order=seller_order,
            reason="Lost in transit",
            requested_by=seller_order.seller.user,
        )
        refund_submit(refund=refund)

    # --- payouts -----------------------------------------------------------------------

    def release_holds(self) -> None:
        holds_release_due()

    def pay_sellers(self) -> None:
        """The monthly payout run; the operator pays the manual (bank transfer) payouts
        two days later."""
        run_payouts()
        self.work()  # the processor payouts are sent
        manual = Payout.objects.filter(method=PayoutMethod.MANUAL, status=Payout.Status.SCHEDULED)
        if manual.exists():
            self.at(self.clock.at + timedelta(days=2, hours=4), self.bank_transfers_paid)

    def bank_transfers_paid(self) -> None:
        manual = Payout.objects.filter(method=PayoutMethod.MANUAL, status=Payout.Status.SCHEDULED)
        for payout in manual.order_by("pk"):
            payout_mark_paid(
                payout=payout,
                by=self.operator,
                bank_reference=f"BT-{timezone.localdate():%Y%m%d}-{payout.pk}",
            )

    # --- the stories -------------------------------------------------------------------

    def account_under_review(self, slug: str) -> None:
        """The processor reviews the seller's account (as Stripe may ask for a document
        again): it cannot receive transfers, so this morning's payout to it fails and
        its money stays available. The next day the seller is verified again and the
        operator retries the payout."""
        account_id = self.sellers[slug].payout_account_id
        LocalAccount.objects.filter(pk=account_id).update(details_submitted=False)
        self.at(self.clock.at + timedelta(days=1, hours=4), self.account_verified, slug)

    def account_verified(self, slug: str) -> None:
        seller = self.sellers[slug]
        LocalProcessor().account_complete_onboarding(account_id=seller.payout_account_id)
        self.work()
        for failed in Payout.objects.filter(seller=seller, status=Payout.Status.FAILED):
            payout_retry(
                payout=failed, by=self.operator, reason="The seller's account was verified again."
            )

    def refund_after_payout(self) -> None:
        """A mug comes back after its sale was paid out: the refund leaves Harbor owing
        it, netted from its next payout."""
        paid_out = (
            PayoutEntry.objects.filter(
                payout__status=Payout.Status.PAID,
                payout__seller__slug="harbor-ceramics",
                entry__amount_minor__lt=0,
                entry__order_line__refunded_minor=0,
                entry__order_line__refund_requests__isnull=True,
                entry__order_line__order__status=Order.Status.PAID,
            )
            .select_related("entry__order_line")
            .order_by("-payout__paid_at", "-entry_id")
            .first()
        )
        if paid_out is None or paid_out.entry.order_line is None:
            return
        line = paid_out.entry.order_line
        request = refund_request_create(
            customer=line.order.customer, order_line=line, reason="Returned unused, as agreed"
        )
        refund_request_approve(
            request=request, by=self.sellers["harbor-ceramics"].user, note="Return received."
        )

    def kiln_accident(self) -> None:
        """Bob's yen order: the seller cancels before shipping, which refunds it."""
        order = self.sale(
            "kyoto-craft-house",
            items=[("Matcha Bowl", 1), ("Hinoki Chopsticks", 1)],
            customer=self.customers[1],
        )
        self.at(self.clock.at + timedelta(hours=3), self.cancel, order.pk)

    def cancel(self, order_id: int) -> None:
        seller_order = SellerOrder.objects.select_related("seller__user").get(order_id=order_id)
        refund = seller_order_cancel(
            seller_order=seller_order,
            reason="Kiln accident: the bowl cracked in its last firing",
            by=seller_order.seller.user,
        )
        if refund is not None:
            refund_submit(refund=refund)

    def _delivered_line(self, customer: User, *, before: datetime) -> OrderLine | None:
        candidates = SellerOrder.objects.filter(
            order__customer=customer,
            status=SellerOrder.Status.DELIVERED,
            delivered_at__lt=before,
        ).order_by("-delivered_at")
        for seller_order in candidates[:20]:
            line = self._refundable_line(seller_order.pk)
            if line is not None:
                return line
        return None

    def declined_refund_request(self) -> None:
        """Alice asks long after delivery; the seller declines the next day."""
        customer = self.customers[0]
        line = self._delivered_line(customer, before=self.clock.at - timedelta(days=40))
        if line is not None:
            request = refund_request_create(
                customer=customer, order_line=line, reason="Changed my mind"
            )
            self.at(self.clock.at + timedelta(days=1), self.decline, request.pk)

    def decline(self, request_id: int) -> None:
        request = RefundRequest.objects.select_related("order_line__seller_order__seller").get(
            pk=request_id
        )
        refund_request_decline(
            request=request,
            by=request.order_line.seller_order.seller.user,
            note="Outside our 30-day return window, sorry.",
        )

    def waiting_refund_request(self) -> None:
        """Bob asks for a refund two days ago: it waits for the seller's (or an
        operator's) decision."""
        customer = self.customers[1]
        line = self._delivered_line(customer, before=self.clock.at)
        if line is not None:
            refund_request_create(
                customer=customer, order_line=line, reason="The glaze is cracked along the rim"
            )

    def unpaid_order(self) -> None:
        """An order placed minutes ago, still waiting for its payment."""
        customer = self.customers[0]
        product = Product.objects.get(title="Pour-over Coffee Set")
        place_order(
            customer=customer,
            cart_items=[CartItem(product.pk, 1)],
            shipping=ADDRESSES[customer.email],
        )
        self.sales += 1


US_NEIGHBOURS = {"northwind-books": "harbor-ceramics", "harbor-ceramics": "northwind-books"}
