"""Regenerate the README's screenshots from a demo shop with a year of history.

    make screenshots

Builds a throwaway SQLite database in a temporary directory: the demo data of
``seed_demo`` as of a year ago, then a year of orders (paid through the real
services, with the clock moved by time-machine), weekly hold releases and payout
runs paying sellers on Mondays, and a few refunds. Then it serves that database on a free port of
127.0.0.1 and photographs the pages in headless Chromium (Debian's
``/usr/bin/chromium``) into ``docs/screenshots/``. Nothing else is touched.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
DAYS = 365


def isolated_env(var_dir: Path) -> dict[str, str]:
    """Settings that keep every byte in ``var_dir``: the embedded SQLite database
    and broker, whatever DATABASE_URL or CELERY_BROKER_URL the shell has."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        os.environ.pop(name, None)
    return {"VAR_DIR": str(var_dir)}


def build_history(var_dir: Path) -> None:
    """The demo data as of a year ago, then a year of sales for the demo shops."""
    os.environ.update(isolated_env(var_dir), DJANGO_SETTINGS_MODULE="marketplace.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    import time_machine
    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import User
    from marketplace.celery import app
    from marketplace.models import Product
    from marketplace.services.cart import CartStorage, cart_add
    from marketplace.services.orders import CartItem, place_order
    from payments.captures import order_payment_captured
    from payments.holds import holds_release_due
    from payments.models import PayoutPolicy
    from payments.payouts import run_payouts
    from payments.policies import payout_policy_save
    from payments.refunds import refund_create, refund_mark_succeeded

    logging.disable(logging.WARNING)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    app.conf.task_always_eager = True  # payouts are sent as the run commits them
    rng = random.Random(7)
    now = timezone.now()
    start = now - timedelta(days=DAYS + 5)
    with time_machine.travel(start, tick=False):
        call_command("migrate", verbosity=0)
        call_command("seed_demo", verbosity=0)
        Product.objects.update(stock=100_000)
        # Sellers are paid weekly, on Mondays.
        payout_policy_save(
            policy=PayoutPolicy(seller=None, schedule=PayoutPolicy.Schedule.WEEKLY, weekday=0),
            reason="Demo: weekly payouts",
        )
    customers = list(User.objects.filter(email__in=["alice@example.com", "bob@example.com"]))
    usd = list(Product.objects.filter(currency="USD", is_active=True))
    eur = list(Product.objects.filter(currency="EUR", is_active=True))
    for day in range(DAYS, 0, -1):
        at = (now - timedelta(days=day)).replace(hour=10, minute=0)
        # Busier towards the end of the year and on weekends.
        orders = rng.choice([0, 1, 1, 2]) + (day < 90) + (at.weekday() >= 5)
        with time_machine.travel(at, tick=False):
            for _ in range(orders):
                shelf = usd if rng.random() < 0.7 else eur
                picked = rng.sample(shelf, k=rng.choice([1, 1, 2, 3]))
                order = place_order(
                    customer=rng.choice(customers),
                    cart_items=[CartItem(p.pk, rng.choice([1, 1, 2])) for p in picked],
                )
                order_payment_captured(order=order)
                if rng.random() < 0.06:
                    line = order.lines.first()
                    refund_mark_succeeded(
                        refund=refund_create(
                            order=order,
                            order_line=line,
                            amount_minor=line.gross_minor // 2,
                            reason="Arrived damaged",
                        )
                    )
        with time_machine.travel(at.replace(hour=6), tick=False):  # the daily 06:00 run
            run_payouts()
    with time_machine.travel(now - timedelta(hours=1), tick=False):
        holds_release_due()
    # Today's cart for the cart and checkout pictures.
    cart = CartStorage(user=User.objects.get(email="alice@example.com"))
    for title, quantity in [("The Lighthouse Keeper", 1), ("Speckled Mug", 2)]:
        cart_add(storage=cart, product=Product.objects.get(title=title), quantity=quantity)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(var_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, **isolated_env(var_dir), "DEBUG": "true"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit("The demo server did not start.")


def photograph(base: str) -> None:
    from playwright.sync_api import Page, sync_playwright

    def log_in(page: Page, email: str, password: str) -> None:
        page.goto(f"{base}/accounts/login/")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        page.locator("main").get_by_role("button", name="Log in").click()
        page.wait_for_load_state()

    def shoot(page: Page, path: str, name: str) -> None:
        page.goto(base + path)
        page.screenshot(path=OUT / f"{name}.png", full_page=True)
        print(f"docs/screenshots/{name}.png  {path}")

    args = ["--no-sandbox", "--headless", "--disable-gpu"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        desktop = {"viewport": {"width": 1280, "height": 900}}
        visitor = browser.new_page(**desktop)
        shoot(visitor, "/", "home")
        shoot(visitor, "/products/?category=home-kitchen&in_stock=on", "product-list")
        phone = browser.new_page(viewport={"width": 360, "height": 780})
        shoot(phone, "/products/", "product-list-phone")

        customer = browser.new_page(**desktop)
        log_in(customer, "alice@example.com", "alice-demo-pass")
        shoot(customer, "/cart/", "cart")
        shoot(customer, "/checkout/USD/", "checkout")

        seller = browser.new_page(**desktop)
        log_in(seller, "books@example.com", "books-demo-pass")
        shoot(seller, "/sell/", "seller-dashboard")
        shoot(seller, "/sell/transactions/", "seller-transactions")
        shoot(seller, "/sell/payouts/", "seller-payouts")
        seller.goto(f"{base}/sell/payouts/")
        latest = seller.locator("main table tbody a").first.get_attribute("href")
        shoot(seller, latest or "/sell/payouts/", "payout-breakdown")
        seller.goto(f"{base}/sell/orders/?show=all")
        order = seller.locator("main article h2 a").first.get_attribute("href")
        shoot(seller, order or "/sell/orders/", "seller-order")
        browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="marketplace-shots-") as tmp:
        var_dir = Path(tmp)
        started = datetime.now()
        # The history is built in a child process so that its moved clock and its
        # Django set-up stay out of this one.
        subprocess.run([sys.executable, __file__, "--build", str(var_dir)], check=True)
        print(f"History built in {(datetime.now() - started).seconds} s")
        port = free_port()
        server = serve(var_dir, port)
        try:
            photograph(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        build_history(Path(sys.argv[2]))
    else:
        main()
