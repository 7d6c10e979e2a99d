"""docs/headless_checkout.py pays an order against a live server, as CI runs it.

The server is Django's live server thread on 127.0.0.1 (a free port) over the
test database; its Celery tasks run eagerly in that thread once each request's
transaction commits, as with a fast worker, so the processor's events are
processed and the order becomes paid. The script runs as a subprocess, talking
HTTP only, exactly as docs/api.md shows it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from accounts.tokens import api_token_create
from marketplace.models import Order
from payments.checks import ledger_check
from payments.models import LedgerTransaction
from tests.factories import CommissionRuleFactory, ProductFactory

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "headless_checkout.py"
API_DOC = ROOT / "docs" / "api.md"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(transactional_db, settings, eager_celery):
    """A live server on the IPv4 loopback address only, on a free port."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    live = LiveServer("127.0.0.1")
    yield live
    live.stop()


@pytest.fixture
def token(customer, seller, other_seller, category):
    """The customer's API token, with a catalog of two sellers (10% commission)."""
    CommissionRuleFactory(percentage_bps=1000)
    ProductFactory(seller=seller, category=category, title="Mug", price_minor=1250, stock=5)
    ProductFactory(seller=other_seller, category=category, title="Vase", price_minor=4000, stock=5)
    return api_token_create(user=customer, name="headless checkout").raw


def run_script(server, token, *args):
    # No proxy: the script must reach the loopback address directly.
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = "*"
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--base-url", server.url, "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )


def assert_paid_with_splits(customer, stdout):
    order = Order.objects.get(customer=customer)
    assert order.status == Order.Status.PAID
    assert order.total_minor == 5250
    splits = sorted(
        order.seller_orders.values_list(
            "seller__slug", "gross_minor", "commission_minor", "seller_share_minor"
        )
    )
    assert splits == [("acme", 1250, 125, 1125), ("rival", 4000, 400, 3600)]
    assert (
        LedgerTransaction.objects.filter(
            kind=LedgerTransaction.Kind.PAYMENT_CAPTURED, reference_id=str(order.pk)
        ).count()
        == 1
    )
    assert ledger_check().ok
    assert f"Order #{order.pk} is paid. Split per seller:" in stdout
    assert "acme: gross 1250, commission 125, seller share 1125" in stdout
    assert "rival: gross 4000, commission 400, seller share 3600" in stdout


def test_the_script_pays_an_order_against_a_live_server(server, token, customer):
    result = run_script(server, token)

    assert result.returncode == 0, result.stdout + result.stderr
    assert_paid_with_splits(customer, result.stdout)


def test_the_script_takes_the_3d_secure_branch(server, token, customer):
    result = run_script(server, token, "--card", "4000002500003155")

    assert result.returncode == 0, result.stdout + result.stderr
    assert_paid_with_splits(customer, result.stdout)
    assert customer.orders.get().payment_attempts.get().status == "succeeded"


def test_a_declined_card_ends_the_script_with_the_processors_message(server, token, customer):
    result = run_script(server, token, "--card", "4000000000000002")

    assert result.returncode == 1
    assert "402 card_declined: Your card was declined." in result.stderr
    assert Order.objects.get(customer=customer).status == Order.Status.AWAITING_PAYMENT


def test_docs_api_md_shows_the_script_verbatim():
    doc = API_DOC.read_text()
    shown = re.search(
        r"<!-- headless_checkout\.py -->\n```python\n(.*?)```\n<!-- /headless_checkout\.py -->",
        doc,
        re.DOTALL,
    )

    assert shown is not None, "docs/api.md lacks the script between its markers"
    assert shown.group(1) == SCRIPT.read_text()
