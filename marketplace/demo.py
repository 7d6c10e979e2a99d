"""Demo data for a fresh install: an operator, sellers in three currencies,
customers and a catalog. Running it again changes nothing that exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from accounts import services as account_services
from accounts.models import Seller, User
from marketplace.models import Category, Order, Product
from marketplace.services.orders import CartItem, place_order, seller_order_cancel
from marketplace.services.products import product_create
from payments.captures import order_payment_captured
from payments.currencies import to_minor_units
from payments.holds import seller_order_hold_release
from payments.models import CommissionRule
from payments.money import percentage
from payments.onboarding import seller_account_sync, seller_onboarding_start
from payments.processors.local import LocalProcessor
from payments.refunds import refund_create, refund_mark_succeeded

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
        result.created.append(f"user {email}")
    return user


@transaction.atomic
def demo_seed() -> DemoSeedResult:
    """Create the demo data that is missing; existing rows are left as they are."""
    result = DemoSeedResult()

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
    _orders(result)
    _demo_payout_schedule(result)
    return result


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
    from payments.models import PayoutPolicy

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
    from django.conf import settings

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
        )
        result.created.append(f"commission rule {name}")


def _demo_fee(total_minor: int) -> int:
    """A card fee like the processors': 2.9% plus 30 minor units."""
    return percentage(total_minor, 290) + 30


def _order(email: str, items: list[tuple[str, int]]) -> Order:
    customer = User.objects.get(email=email)
    cart = [CartItem(Product.objects.get(title=title).pk, quantity) for title, quantity in items]
    return place_order(customer=customer, cart_items=cart)


def _orders(result: DemoSeedResult) -> None:
    """A few orders in every state money can be in, once."""
    customers = [email for email, _, _ in CUSTOMERS]
    if Order.objects.filter(customer__email__in=customers).exists():
        return
    # Alice buys from two US shops; one shop's hold is released, then part
    # of a line is refunded out of its available balance.
    usd = _order(
        CUSTOMERS[0][0],
        [("The Lighthouse Keeper", 1), ("Pocket Notebook, Dot Grid", 2), ("Speckled Mug", 2)],
    )
    order_payment_captured(order=usd, processor_fee_minor=_demo_fee(usd.total_minor))
    books = usd.seller_orders.get(seller__slug="northwind-books")
    seller_order_hold_release(seller_order=books)
    notebooks = usd.lines.get(title="Pocket Notebook, Dot Grid")
    refund_mark_succeeded(
        refund=refund_create(
            order=usd, order_line=notebooks, amount_minor=500, reason="Arrived with a bent cover"
        )
    )
    # Bob pays in euros.
    eur = _order(CUSTOMERS[1][0], [("Stoneware Bowl", 1), ("Riviera Poster, A3", 1)])
    order_payment_captured(order=eur, processor_fee_minor=_demo_fee(eur.total_minor))
    # Bob's yen order: the seller cancels before shipping, which refunds it.
    jpy = _order(CUSTOMERS[1][0], [("Matcha Bowl", 1), ("Hinoki Chopsticks", 1)])
    order_payment_captured(order=jpy, processor_fee_minor=_demo_fee(jpy.total_minor))
    refund = seller_order_cancel(seller_order=jpy.seller_orders.get(), reason="Kiln accident")
    if refund is not None:
        refund_mark_succeeded(refund=refund)
    # And one order that is still waiting for its payment.
    _order(CUSTOMERS[0][0], [("Pour-over Coffee Set", 1)])
    result.created.append("4 demo orders")
