"""Regenerate the README's screenshots from a demo shop with a year of history.

    make screenshots

Builds a throwaway SQLite database in a temporary directory with the demo data of
``seed_demo`` (a year of trading through the real services: payouts paid and one
failed, refunds, a dispute, a refund request waiting). Then it serves that
database on a free port of 127.0.0.1 and photographs the pages in headless
Chromium (Debian's ``/usr/bin/chromium``) into ``docs/screenshots/``. Nothing
else is touched.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def isolated_env(var_dir: Path) -> dict[str, str]:
    """Settings that keep every byte in ``var_dir``: the embedded SQLite database
    and broker, whatever DATABASE_URL or CELERY_BROKER_URL the shell has."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"):
        os.environ.pop(name, None)
    return {"VAR_DIR": str(var_dir)}


def build_history(var_dir: Path) -> None:
    """The demo data (``seed_demo``: a year of trading through the real services), and
    a cart for the cart and checkout pictures."""
    os.environ.update(isolated_env(var_dir), DJANGO_SETTINGS_MODULE="marketplace.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    from accounts.models import User
    from marketplace.models import Product
    from marketplace.services.cart import CartStorage, cart_add

    logging.disable(logging.WARNING)
    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
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

        operator = browser.new_page(**desktop)
        operator.goto(f"{base}/admin/")
        operator.get_by_label("Email address").fill("operator@example.com")
        operator.get_by_label("Password").fill("operator-demo-pass")
        operator.get_by_role("button", name="Log in").click()
        operator.wait_for_load_state()
        shoot(operator, "/admin/", "admin-dashboard")
        shoot(operator, "/admin/payments/refundrequest/", "admin-refund-requests")
        approve = operator.get_by_role("link", name="Approve…").first.get_attribute("href")
        shoot(operator, approve or "/admin/payments/refundrequest/", "admin-refund-approve")
        # An order of two sellers: its page, and refunding one seller's part.
        operator.goto(f"{base}/admin/marketplace/order/?o=-1")
        order_links = operator.locator("#result_list tbody th a")
        for index in range(order_links.count()):
            operator.goto(base + (order_links.nth(index).get_attribute("href") or ""))
            if operator.get_by_role("link", name=re.compile("Refund this seller")).count() > 1:
                break
            operator.goto(f"{base}/admin/marketplace/order/?o=-1")
        order_page = operator.url.removeprefix(base)
        shoot(operator, order_page, "admin-order")
        part = operator.get_by_role("link", name=re.compile("Refund this seller")).last
        shoot(operator, part.get_attribute("href") or order_page, "admin-refund-confirm")
        operator.goto(f"{base}/admin/accounts/seller/?q=Harbor")
        harbor = operator.locator("#result_list tbody th a").first.get_attribute("href")
        shoot(operator, harbor or "/admin/accounts/seller/", "admin-seller")
        operator.goto(f"{base}/admin/payments/payout/?status__exact=failed")
        failed = operator.locator("#result_list tbody th a").first.get_attribute("href")
        operator.goto(f"{base}/admin/payments/payout/?o=-1")
        shoot(operator, failed or "/admin/payments/payout/", "admin-payout-history")
        shoot(operator, "/admin/payments/payoutpolicy/add/", "admin-payout-policy")
        shoot(operator, "/admin/payments/revenuereport/?period=month", "admin-revenue-report")
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
