"""Text that sellers and customers type (product names and descriptions, shop names,
refund reasons) is shown as text everywhere: escaped in pages and the admin, and never
a formula in a CSV download."""

import csv
import io

import pytest
from django.urls import reverse

from marketplace.kernel.spreadsheets import spreadsheet_text
from marketplace.models import Order
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


@pytest.fixture
def hostile(customer):
    CommissionRuleFactory(percentage_bps=1000)
    shop = SellerFactory(display_name=f"Shop {SCRIPT}", slug="hostile")
    product = ProductFactory(
        seller=shop, title=f"Mug {SCRIPT}", description=f"Lovely {SCRIPT}", stock=5
    )
    order = paid_order([(shop, 1000, 1)], customer=customer)
    order.lines.update(title=product.title)
    return shop, product, order


def pages(shop, product, order):
    return {
        "customer": [
            reverse("marketplace:product_list"),
            reverse("marketplace:product_list") + "?q=Mug",
            product.get_absolute_url(),
            reverse("marketplace:seller_storefront", args=[shop.slug]),
            reverse("marketplace:order_list"),
            reverse("marketplace:order_detail", args=[order.pk]),
        ],
        "seller": [
            reverse("marketplace:seller_orders") + "?show=all",
            reverse("marketplace:seller_order_detail", args=[order.seller_orders.get().pk]),
            reverse("marketplace:seller_product_list"),
        ],
        "admin": [
            reverse("admin:marketplace_product_changelist"),
            reverse("admin:marketplace_product_change", args=[product.pk]),
            reverse("admin:marketplace_order_change", args=[order.pk]),
            reverse("admin:accounts_seller_changelist"),
        ],
    }


def test_html_in_names_and_descriptions_is_escaped_on_every_page(
    client, hostile, customer, admin_user
):
    shop, product, order = hostile
    who = {"customer": customer, "seller": shop.user, "admin": admin_user}
    for role, urls in pages(shop, product, order).items():
        client.force_login(who[role])
        for url in urls:
            page = client.get(url)
            assert page.status_code == 200, url
            assert SCRIPT not in page.text, url
            assert ESCAPED in page.text or "&lt;script&gt;" in page.text, url


def test_a_formula_is_never_a_formula_in_a_csv(client):
    for formula in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"):
        assert spreadsheet_text(formula).startswith("'")
    assert spreadsheet_text("Ada Lovelace") == "Ada Lovelace"


def test_the_statement_csv_keeps_a_slug_that_looks_like_a_formula_as_text(client):
    shop = SellerFactory(slug="-1-shop")
    client.force_login(shop.user)

    response = client.get(reverse("marketplace:seller_statement_csv"))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][0] == "'-1-shop"
    assert Order.objects.count() == 0
