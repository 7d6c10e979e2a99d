import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from marketplace.models import Product
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

NEW = reverse("marketplace:seller_product_new")
MINE = reverse("marketplace:seller_product_list")


def png(size=(40, 30), name="photo.png"):
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def form_data(category_obj, **overrides):
    data = {
        "title": "Blue Teapot",
        "category": category_obj.pk,
        "description": "Holds a litre.",
        "price": "24.99",
        "currency": "USD",
        "stock": "4",
        "slug": "",
        "is_active": "on",
    }
    return data | overrides


def edit_url(product):
    return reverse("marketplace:seller_product_edit", args=[product.slug])


def test_a_seller_adds_a_product_with_an_image(seller_client, seller, category):
    response = seller_client.post(NEW, form_data(category, image=png()))

    assert response.status_code == 302
    product = Product.objects.get()
    assert (product.seller, product.title, product.slug) == (seller, "Blue Teapot", "blue-teapot")
    assert (product.price_minor, product.currency, product.stock) == (2499, "USD", 4)
    assert product.image.name.endswith(".png")


def test_the_new_product_form_defaults_to_the_seller_currency(seller_client, seller):
    seller.default_currency = "JPY"
    seller.save()

    response = seller_client.get(NEW)

    assert response.context["form"].initial["currency"] == "JPY"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"price": "-1.00"}, "price", "The amount cannot be negative."),
        ({"price": "12.345"}, "price", "USD amounts have at most 2 decimal places."),
        ({"price": "100.5", "currency": "JPY"}, "price", "JPY amounts have no decimal places."),
        ({"price": "ten"}, "price", "Enter an amount such as 12.50."),
        ({"stock": "-2"}, "stock", "greater than or equal to 0"),
        ({"stock": "1.5"}, "stock", "Enter a whole number."),
        ({"slug": "taken"}, "slug", "Another product already uses this address."),
        ({"slug": "has spaces"}, "slug", "valid “slug”"),
        ({"title": ""}, "title", "This field is required."),
        ({"category": "999999"}, "category", "Select a valid choice"),
        ({"currency": "BTC"}, "currency", "Select a valid choice"),
    ],
)
def test_bad_input_shows_a_form_error_and_writes_nothing(
    seller_client, category, overrides, field, message
):
    ProductFactory(slug="taken")

    response = seller_client.post(NEW, form_data(category, **overrides))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert 'aria-invalid="true"' in response.content.decode()
    assert Product.objects.count() == 1


def test_a_file_that_is_not_an_image_is_refused(seller_client, category):
    fake = SimpleUploadedFile("photo.png", b"not an image at all", content_type="image/png")

    response = seller_client.post(NEW, form_data(category, image=fake))

    assert "image" in response.context["form"].errors
    assert not Product.objects.exists()


def test_an_oversized_image_is_refused(seller_client, category, settings):
    settings.PRODUCT_IMAGE_MAX_BYTES = 1024

    response = seller_client.post(NEW, form_data(category, image=png(size=(400, 400))))

    assert "The image is larger than 1.0\xa0KB." in response.context["form"].errors["image"]
    assert not Product.objects.exists()


def test_a_seller_edits_their_product_and_keeps_the_image_when_none_is_uploaded(
    seller_client, seller, category
):
    seller_client.post(NEW, form_data(category, image=png()))
    product = Product.objects.get()
    image_name = product.image.name

    page = seller_client.get(edit_url(product))
    assert 'value="24.99"' in page.content.decode()

    response = seller_client.post(
        edit_url(product), form_data(category, title="Green Teapot", price="30", slug="blue-teapot")
    )

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.title, product.price_minor, product.image.name) == (
        "Green Teapot",
        3000,
        image_name,
    )


def test_a_seller_can_clear_the_image(seller_client, category):
    seller_client.post(NEW, form_data(category, image=png()))
    product = Product.objects.get()

    seller_client.post(edit_url(product), form_data(category, **{"image-clear": "on"}))

    product.refresh_from_db()
    assert not product.image


def test_a_failed_edit_changes_nothing(seller_client, seller, category):
    product = ProductFactory(seller=seller, title="Original", price_minor=100)

    response = seller_client.post(edit_url(product), form_data(category, price="1.999"))

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.title, product.price_minor) == ("Original", 100)


def test_deactivate_and_activate(seller_client, seller):
    product = ProductFactory(seller=seller)

    seller_client.post(reverse("marketplace:seller_product_deactivate", args=[product.slug]))
    product.refresh_from_db()
    assert not product.is_active

    seller_client.post(reverse("marketplace:seller_product_activate", args=[product.slug]))
    product.refresh_from_db()
    assert product.is_active


def test_deactivate_needs_a_post(seller_client, seller):
    product = ProductFactory(seller=seller)

    response = seller_client.get(
        reverse("marketplace:seller_product_deactivate", args=[product.slug])
    )

    assert response.status_code == 405
    product.refresh_from_db()
    assert product.is_active


@pytest.mark.parametrize(
    ("method", "url_name"),
    [
        ("get", "marketplace:seller_product_edit"),
        ("post", "marketplace:seller_product_edit"),
        ("post", "marketplace:seller_product_deactivate"),
        ("post", "marketplace:seller_product_activate"),
    ],
)
def test_a_seller_can_never_touch_another_seller_product(
    seller_client, other_seller, category, method, url_name
):
    theirs = ProductFactory(seller=other_seller, title="Theirs", is_active=True)

    response = getattr(seller_client, method)(
        reverse(url_name, args=[theirs.slug]), form_data(category, title="Stolen")
    )

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.title, theirs.is_active) == ("Theirs", True)


def test_my_products_lists_only_my_products_including_hidden_ones(seller_client, seller):
    ProductFactory(seller=seller, title="Listed")
    ProductFactory(seller=seller, title="Hidden", is_active=False)
    ProductFactory(title="Not mine")

    response = seller_client.get(MINE)

    assert [p.title for p in response.context["products"]] == ["Listed", "Hidden"]


def test_customers_are_sent_to_open_a_shop(customer_client):
    for url in (MINE, NEW):
        response = customer_client.get(url)
        assert response.status_code == 302
        assert response.url == reverse("accounts:seller_become")


def test_visitors_are_sent_to_log_in(client):
    response = client.get(NEW)

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_my_products_runs_the_same_number_of_queries_for_10_or_40_products(
    seller_client, seller, django_assert_max_num_queries
):
    ProductFactory.create_batch(10, seller=seller)
    with CaptureQueriesContext(connection) as small:
        seller_client.get(MINE)
    ProductFactory.create_batch(30, seller=seller)

    with django_assert_max_num_queries(len(small)):
        seller_client.get(MINE)
