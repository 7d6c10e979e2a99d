import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import CategoryFactory, ProductFactory, SellerFactory

pytestmark = pytest.mark.django_db

LIST = reverse("marketplace:product_list")


def titles(response):
    return [p.title for p in response.context["page_obj"].object_list]


def test_home_shows_featured_products_first_then_the_newest(client):
    ProductFactory(title="Old")
    ProductFactory(title="New")
    ProductFactory(title="Star", is_featured=True)
    ProductFactory(title="Hidden", is_active=False)

    response = client.get(reverse("marketplace:home"))

    assert response.status_code == 200
    assert [p.title for p in response.context["featured"]] == ["Star", "New", "Old"]


def test_home_with_an_empty_catalog_invites_sellers(client):
    response = client.get(reverse("marketplace:home"))

    assert "Be the first to sell here" in response.content.decode()


def test_product_list_hides_inactive_products(client):
    ProductFactory(title="Shown")
    ProductFactory(title="Hidden", is_active=False)

    assert titles(client.get(LIST)) == ["Shown"]


def test_search_matches_title_and_description_case_insensitively(client):
    ProductFactory(title="Blue Teapot")
    ProductFactory(title="Mug", description="Goes with the BLUE teapot")
    ProductFactory(title="Red Kettle")

    assert sorted(titles(client.get(LIST, {"q": "blue"}))) == ["Blue Teapot", "Mug"]
    assert titles(client.get(LIST, {"q": "  "})) != []


def test_category_filter_includes_sub_categories(client):
    books = CategoryFactory(slug="books")
    fiction = CategoryFactory(slug="fiction", parent=books)
    ProductFactory(title="Atlas", category=books)
    ProductFactory(title="Novel", category=fiction)
    ProductFactory(title="Mug")

    assert sorted(titles(client.get(LIST, {"category": "books"}))) == ["Atlas", "Novel"]
    assert titles(client.get(LIST, {"category": "fiction"})) == ["Novel"]


def test_an_unknown_category_shows_an_error_and_no_products(client):
    ProductFactory()

    response = client.get(LIST, {"category": "no-such-category"})

    assert response.status_code == 200
    assert titles(response) == []
    assert "category" in response.context["filter"].errors


def test_seller_filter(client):
    acme = SellerFactory(slug="acme", display_name="Acme")
    ProductFactory(title="From Acme", seller=acme)
    ProductFactory(title="From elsewhere")

    response = client.get(LIST, {"seller": "acme"})

    assert titles(response) == ["From Acme"]
    assert response.context["seller"] == acme


def test_the_seller_filter_offers_the_sellers_with_products(client):
    SellerFactory(display_name="Empty shop")
    ProductFactory(seller=SellerFactory(display_name="Bakery", slug="bakery"))

    form = client.get(LIST).context["filter"].form

    assert [label for _, label in form.fields["seller"].choices] == ["All sellers", "Bakery"]


def test_an_unknown_seller_is_a_form_error_not_a_500(client):
    ProductFactory()

    response = client.get(LIST, {"seller": "nobody"})

    assert response.status_code == 200
    assert titles(response) == []
    assert "Select a valid choice" in response.text


def test_price_range_is_in_each_currencys_own_units(client):
    ProductFactory(title="USD 9.99", price_minor=999, currency="USD")
    ProductFactory(title="USD 10.00", price_minor=1000, currency="USD")
    ProductFactory(title="USD 20.01", price_minor=2001, currency="USD")
    ProductFactory(title="JPY 15", price_minor=15, currency="JPY")
    ProductFactory(title="JPY 1500", price_minor=1500, currency="JPY")
    ProductFactory(title="KWD 12.500", price_minor=12500, currency="KWD")

    response = client.get(LIST, {"min_price": "10", "max_price": "20", "sort": "title"})

    assert titles(response) == ["JPY 15", "KWD 12.500", "USD 10.00"]


def test_a_price_bound_between_cents_rounds_inward(client):
    ProductFactory(title="USD 10.00", price_minor=1000, currency="USD")
    ProductFactory(title="USD 10.01", price_minor=1001, currency="USD")

    assert titles(client.get(LIST, {"min_price": "10.005"})) == ["USD 10.01"]
    assert titles(client.get(LIST, {"max_price": "10.005"})) == ["USD 10.00"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"min_price": "30", "max_price": "20"}, "Enter a highest price at or above the lowest"),
        ({"min_price": "-1"}, "greater than or equal to 0"),
        ({"max_price": "lots"}, "Enter a number."),
        ({"max_price": "1e400"}, "less than or equal to"),
    ],
)
def test_a_bad_price_range_is_a_form_error(client, params, error):
    ProductFactory()

    response = client.get(LIST, params)

    assert response.status_code == 200
    assert titles(response) == []
    assert error in response.text


def test_in_stock_only_hides_sold_out_products(client):
    ProductFactory(title="Plenty", stock=5)
    ProductFactory(title="Sold out", stock=0)

    everything = titles(client.get(LIST, {"sort": "title"}))
    in_stock = titles(client.get(LIST, {"in_stock": "on"}))

    assert everything == ["Plenty", "Sold out"]
    assert in_stock == ["Plenty"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("price", ["Cheap", "Middle", "Dear"]),
        ("-price", ["Dear", "Middle", "Cheap"]),
        ("title", ["Cheap", "Dear", "Middle"]),
        ("-created", ["Dear", "Cheap", "Middle"]),
    ],
)
def test_sorting(client, sort, expected):
    ProductFactory(title="Middle", price_minor=500)
    ProductFactory(title="Cheap", price_minor=100)
    ProductFactory(title="Dear", price_minor=900)

    assert titles(client.get(LIST, {"sort": sort})) == expected


def test_price_sorting_compares_prices_within_a_currency(client):
    ProductFactory(title="Yen", price_minor=1500, currency="JPY")
    ProductFactory(title="Euro dear", price_minor=9000, currency="EUR")
    ProductFactory(title="Euro cheap", price_minor=1000, currency="EUR")

    assert titles(client.get(LIST, {"sort": "price"})) == ["Euro cheap", "Euro dear", "Yen"]


def test_pagination_keeps_the_filters_and_never_repeats_a_product(client):
    ProductFactory.create_batch(30, title="Teapot", price_minor=100)

    first = client.get(LIST, {"q": "teapot", "sort": "price"})
    second = client.get(LIST, {"q": "teapot", "sort": "price", "page": 2})
    third = client.get(LIST, {"q": "teapot", "sort": "price", "page": 3})

    assert first.context["page_obj"].paginator.num_pages == 3
    assert "q=teapot&amp;sort=price&amp;page=2" in first.content.decode()
    ids = [p.pk for r in (first, second, third) for p in r.context["page_obj"].object_list]
    assert len(ids) == len(set(ids)) == 30


@pytest.mark.parametrize("page", ["999", "abc", "-1"])
def test_an_out_of_range_page_shows_a_valid_page(client, page):
    ProductFactory.create_batch(13)

    response = client.get(LIST, {"page": page})

    assert response.status_code == 200
    assert response.context["page_obj"].object_list


def test_product_page_shows_price_seller_and_stock(client):
    product = ProductFactory(
        title="Matcha Bowl",
        price_minor=6500,
        currency="JPY",
        seller=SellerFactory(display_name="Kyoto", default_currency="JPY"),
        stock=0,
    )

    response = client.get(product.get_absolute_url())

    html = response.content.decode()
    assert "¥6,500" in html
    assert "Kyoto" in html
    assert "Out of stock" in html


def test_an_inactive_product_page_is_not_found_except_for_its_seller(client, seller):
    product = ProductFactory(seller=seller, is_active=False)

    assert client.get(product.get_absolute_url()).status_code == 404
    client.force_login(SellerFactory().user)
    assert client.get(product.get_absolute_url()).status_code == 404
    client.force_login(seller.user)
    response = client.get(product.get_absolute_url())
    assert response.status_code == 200
    assert "only you can see this page" in response.content.decode()


def test_seller_storefront_lists_only_that_seller_active_products(client, seller):
    ProductFactory(title="Mine", seller=seller)
    ProductFactory(title="Mine but hidden", seller=seller, is_active=False)
    ProductFactory(title="Someone else's")

    response = client.get(reverse("marketplace:seller_storefront", args=[seller.slug]))

    assert titles(response) == ["Mine"]
    assert "payout account is pending verification" in response.content.decode()


def test_unknown_storefront_is_a_404_page_in_the_site_design(client):
    response = client.get(reverse("marketplace:seller_storefront", args=["nobody"]))

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (reverse("marketplace:home"), {}),
        (LIST, {}),
        (LIST, {"q": "product", "category": "books", "sort": "price"}),
        (reverse("marketplace:seller_storefront", args=["acme"]), {}),
    ],
    ids=["home", "list", "list-filtered", "storefront"],
)
def test_catalog_pages_run_the_same_number_of_queries_for_10_or_40_products(
    client, django_assert_max_num_queries, url, params
):
    books = CategoryFactory(slug="books")
    acme = SellerFactory(slug="acme")
    sub = CategoryFactory(parent=books)

    def make(n):
        for i in range(n):
            ProductFactory(
                seller=acme if i % 2 else SellerFactory(),
                category=sub if i % 3 else books,
                is_featured=i % 4 == 0,
            )

    make(10)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url, params).status_code == 200
    make(30)
    with django_assert_max_num_queries(len(small)):
        assert client.get(url, params).status_code == 200
