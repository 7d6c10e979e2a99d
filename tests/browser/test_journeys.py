"""Journeys through the site in a real Chromium, checked on screen and in the database.

Every step is done the way a person does it: follow links, type into labelled
fields, press buttons. The header has its own search form with a "Search"
button, so form buttons are looked up inside ``main``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from accounts.models import Seller, User
from marketplace.models import Product
from tests.factories import PASSWORD, CategoryFactory, ProductFactory, SellerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "violet-harbour-lantern-42"


def main_button(page: Page, name: str) -> Locator:
    """A button of the page's own form, not the header's search button."""
    return page.locator("main").get_by_role("button", name=name, exact=True)


def account_menu(page: Page) -> Locator:
    """The header's account dropdown (``<details class="dropdown">``)."""
    return page.locator("header details.dropdown")


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_role("banner").get_by_role("link", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    main_button(page, "Log in").click()
    expect(account_menu(page)).to_be_visible()


def fill_product_form(page: Page, *, title: str, category: str, price: str, stock: str) -> None:
    """Fill the product form; the currency is left at the shop's default (USD here)."""
    page.get_by_label("Title").fill(title)
    page.get_by_label("Category").select_option(label=category)
    page.get_by_label("Price").fill(price)
    page.get_by_label("Stock").fill(stock)


def test_visitor_opens_a_shop_and_lists_a_product(page: Page, shot) -> None:
    CategoryFactory(name="Stationery", slug="stationery")
    # Another shop's product, which the search below must leave out.
    ProductFactory(title="Cast Iron Kettle", slug="cast-iron-kettle")

    page.goto("/")
    page.get_by_role("link", name="Open a shop").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Open a shop")
    page.get_by_label("Email address").fill("Ines.Ortega@Example.com")
    page.get_by_label("Full name").fill("Inés Ortega")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    page.get_by_label("Shop name").fill("Paper Moon")
    page.get_by_label("Country").select_option(label="United States of America")
    page.get_by_label("Currency").select_option(label="USD — US Dollar")
    shot(page, "01-seller-sign-up")
    main_button(page, "Open my shop").click()

    expect(page).to_have_url(re.compile(r"/sell/products/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My products")
    expect(page.get_by_role("status")).to_have_text("Paper Moon is open. Add your first product.")
    expect(page.get_by_text("You have no products yet.")).to_be_visible()
    seller = Seller.objects.select_related("user").get(display_name="Paper Moon")
    assert seller.user.email == "ines.ortega@example.com"
    assert seller.user.full_name == "Inés Ortega"
    assert (seller.display_name, seller.slug) == ("Paper Moon", "paper-moon")
    assert (seller.country.code, seller.default_currency) == ("US", "USD")

    page.get_by_role("link", name="Add a product").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a product")
    # The currency starts as the shop's own.
    expect(page.get_by_label("Currency")).to_have_value("USD")
    fill_product_form(
        page, title="Moon Phase Notebook", category="Stationery", price="12.50", stock="30"
    )
    shot(page, "02-product-form")
    main_button(page, "List product").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("My products")
    expect(page.get_by_role("status")).to_have_text("“Moon Phase Notebook” is listed.")
    row = page.get_by_role("row").filter(has_text="Moon Phase Notebook")
    expect(row.get_by_role("cell")).to_have_text(
        ["Moon Phase Notebook", "Stationery", "$12.50", "30", "Listed", re.compile("Edit")]
    )
    shot(page, "03-my-products")

    product = Product.objects.get(seller=seller)
    assert product.title == "Moon Phase Notebook"
    assert product.slug == "moon-phase-notebook"
    assert product.category.slug == "stationery"
    assert product.price_minor == 1250
    assert product.currency == "USD"
    assert product.stock == 30
    assert product.is_active

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Products").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Products")
    expect(page.locator(".result-count")).to_have_text("2 products")
    search = page.get_by_role("search")
    search.get_by_role("searchbox", name="Search products").fill("moon phase")
    search.get_by_role("button", name="Search").click()

    expect(page).to_have_url(re.compile(r"/products/\?q=moon\+phase$"))
    expect(page).to_have_title("“moon phase” — Products · Marketplace")
    expect(page.locator(".result-count")).to_have_text("1 product")
    card = page.locator("article.product-card")
    expect(card).to_have_count(1)
    expect(card.get_by_role("heading")).to_have_text("Moon Phase Notebook")
    expect(card.locator(".price")).to_have_text("$12.50")
    expect(card.locator(".meta")).to_have_text("by Paper Moon")
    shot(page, "04-search-results")

    card.get_by_role("link", name="Moon Phase Notebook").click()
    expect(page).to_have_url(re.compile(r"/products/moon-phase-notebook/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Moon Phase Notebook")
    expect(page.locator("main .price")).to_have_text("$12.50")
    expect(page.get_by_text("Sold by Paper Moon")).to_be_visible()
    expect(page.get_by_text("30 in stock")).to_be_visible()
    expect(page.get_by_role("link", name="Edit this product")).to_be_visible()
    shot(page, "05-product-page")


def test_product_form_refuses_bad_price_and_stock(page: Page, seller, category, shot) -> None:
    log_in(page, seller.user.email, PASSWORD)
    page.get_by_role("link", name="My shop").click()
    page.get_by_role("link", name="Add a product").click()

    fill_product_form(page, title="Odd Cents", category="Books", price="12.345", stock="3")
    main_button(page, "List product").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Add a product")
    price = page.get_by_label("Price")
    price_error = "USD amounts have at most 2 decimal places."
    expect(price).to_have_attribute("aria-invalid", "true")
    # The error comes first in the description, then the field's help text.
    expect(price).to_have_accessible_description(re.compile("^" + re.escape(price_error)))
    expect(page.get_by_role("alert")).to_contain_text(f"Price: {price_error}")
    # The message sits right after the field it belongs to.
    expect(page.locator("#id_price + small.field-error")).to_have_text(price_error)
    expect(price).to_have_value("12.345")
    expect(page.locator(".field-error")).to_have_count(1)
    shot(page, "01-price-error")
    assert not Product.objects.exists()

    page.get_by_label("Price").fill("12.50")
    page.get_by_label("Stock").fill("-1")
    main_button(page, "List product").click()

    stock = page.get_by_label("Stock")
    stock_error = "Ensure this value is greater than or equal to 0."
    expect(stock).to_have_attribute("aria-invalid", "true")
    expect(stock).to_have_accessible_description(re.compile("^" + re.escape(stock_error)))
    expect(page.locator("#id_stock + small.field-error")).to_have_text(stock_error)
    expect(page.get_by_label("Price")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Price")).to_have_value("12.50")
    expect(page.locator(".field-error")).to_have_count(1)
    shot(page, "02-stock-error")
    assert not Product.objects.exists()


def test_customer_signs_up_logs_out_and_logs_in_with_other_case(page: Page, shot) -> None:
    page.goto("/")
    page.get_by_role("banner").get_by_role("link", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create an account")
    page.get_by_label("Email address").fill("nora.quinn@example.com")
    page.get_by_label("Full name").fill("Nora Quinn")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    main_button(page, "Create account").click()

    expect(page.get_by_role("status")).to_have_text("Welcome! Your account is ready.")
    menu = account_menu(page)
    expect(menu.locator("summary")).to_have_text("Account menu for Nora")
    header = page.get_by_role("banner")
    expect(header.get_by_role("link", name="Log in")).to_have_count(0)
    expect(header.get_by_role("link", name="Sell")).to_be_visible()
    shot(page, "01-signed-up")
    user = User.objects.get()
    assert (user.email, user.full_name) == ("nora.quinn@example.com", "Nora Quinn")
    assert user.check_password(NEW_PASSWORD)
    assert not Seller.objects.exists()
    first_login = user.last_login
    assert first_login is not None

    log_out = menu.get_by_role("button", name="Log out")
    expect(log_out).to_be_hidden()
    menu.locator("summary").click()
    expect(menu).to_have_attribute("open", "")
    # Pico fades the list in; wait for it so the screenshot shows the open menu.
    expect(menu.get_by_role("list")).to_have_css("opacity", "1")
    expect(log_out).to_be_visible()
    shot(page, "02-account-menu")
    log_out.click()

    expect(header.get_by_role("link", name="Log in")).to_be_visible()
    expect(account_menu(page)).to_have_count(0)
    shot(page, "03-logged-out")

    log_in(page, "NORA.QUINN@EXAMPLE.COM", NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/$"))
    expect(account_menu(page).locator("summary")).to_have_text("Account menu for Nora")
    shot(page, "04-logged-in-again")
    user.refresh_from_db()
    assert user.last_login > first_login
    assert User.objects.count() == 1


def test_seller_cannot_edit_another_sellers_product(
    page: Page, seller, other_seller, category, shot
) -> None:
    own = ProductFactory(seller=seller, category=category, title="Acme Anvil", slug="acme-anvil")
    theirs = ProductFactory(
        seller=other_seller, category=category, title="Rival Lamp", slug="rival-lamp"
    )

    log_in(page, "seller@example.com", PASSWORD)
    # The seller's own product opens, so a 404 below is about ownership.
    page.goto(f"/sell/products/{own.slug}/edit/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit “Acme Anvil”")

    response = page.goto(f"/sell/products/{theirs.slug}/edit/")
    assert response is not None
    assert response.status == 404
    expect(page).to_have_title("Page not found · Marketplace")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(page.locator("main form")).to_have_count(0)
    expect(page.get_by_text("Rival Lamp")).to_have_count(0)
    shot(page, "01-not-found")

    # The public page of the other shop's product offers no edit button either.
    page.goto(theirs.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_have_text("Rival Lamp")
    expect(page.get_by_role("link", name="Edit this product")).to_have_count(0)

    theirs.refresh_from_db()
    assert (theirs.title, theirs.seller_id) == ("Rival Lamp", other_seller.pk)


def test_product_list_fits_a_phone(page: Page, shot) -> None:
    shop = SellerFactory(display_name="Northwind Books")
    books = CategoryFactory(name="Books", slug="books")
    titles = ["A Field Guide to Clouds", "Salt and Stone", "The Quiet Orbit"]
    for title in titles:
        ProductFactory(seller=shop, category=books, title=title)

    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/products/")

    expect(page.get_by_role("heading", level=1)).to_have_text("Products")
    cards = page.locator("article.product-card")
    expect(cards).to_have_count(3)
    for index in range(3):
        expect(cards.nth(index)).to_be_visible()
    # Newest first, and the first product is on the first screen: the
    # filters are folded away on a phone until asked for.
    expect(cards.get_by_role("heading")).to_have_text(list(reversed(titles)))
    first_card = cards.first.bounding_box()
    assert first_card is not None and first_card["y"] < 740, first_card
    filters = page.get_by_role("form", name="Filter products")
    expect(filters).to_be_hidden()
    shot(page, "01-phone")

    page.get_by_text("Filters and sorting").click()
    expect(filters.get_by_label("Search")).to_be_visible()
    expect(filters.get_by_label("Category")).to_be_visible()
    expect(filters.get_by_role("button", name="Apply")).to_be_visible()
    shot(page, "02-phone-filters-open")

    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= 360, widths
    for index in range(3):
        box = cards.nth(index).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 360
