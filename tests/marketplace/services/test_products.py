import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from marketplace.models import Product
from marketplace.services.products import (
    SLUG_TAKEN,
    product_create,
    product_set_active,
    product_update,
    products_set_active_bulk,
)
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def create(seller, category, **overrides):
    data = {
        "seller": seller,
        "title": "Blue Teapot",
        "category": category,
        "price_minor": 2500,
        "currency": "USD",
        "stock": 3,
    }
    return product_create(**(data | overrides))


def test_product_create_makes_a_slug_from_the_title(seller, category):
    product = create(seller, category)

    assert (product.slug, product.price_minor, product.currency, product.is_active) == (
        "blue-teapot",
        2500,
        "USD",
        True,
    )


def test_product_create_numbers_a_generated_slug_that_is_taken(seller, category):
    create(seller, category)

    assert create(seller, category).slug == "blue-teapot-2"


def test_product_create_refuses_a_chosen_slug_that_is_taken(seller, other_seller, category):
    create(seller, category, slug="teapot")

    with pytest.raises(ValidationError) as exc:
        create(other_seller, category, slug="teapot")

    assert exc.value.message_dict == {"slug": [SLUG_TAKEN]}
    assert Product.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("price_minor", -1), ("stock", -1), ("currency", "XYZ"), ("title", "")],
)
def test_product_create_refuses_invalid_values_and_writes_nothing(seller, category, field, value):
    with pytest.raises(ValidationError) as exc:
        create(seller, category, **{field: value})

    assert field in exc.value.message_dict
    assert not Product.objects.exists()


@pytest.mark.parametrize("field", ["price_minor", "stock"])
def test_the_database_itself_refuses_negative_price_and_stock(field):
    product = ProductFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(**{field: -1})


def test_product_update_changes_the_seller_own_product(seller, category):
    product = create(seller, category)

    product_update(product=product, seller=seller, title="Green Teapot", price_minor=2600)

    product.refresh_from_db()
    assert (product.title, product.price_minor, product.slug) == (
        "Green Teapot",
        2600,
        "blue-teapot",
    )


def test_product_update_refuses_another_seller_and_changes_nothing(seller, other_seller, category):
    product = create(seller, category)

    with pytest.raises(PermissionDenied):
        product_update(product=product, seller=other_seller, title="Mine now")

    product.refresh_from_db()
    assert product.title == "Blue Teapot"


def test_product_update_refuses_fields_a_seller_may_not_set(seller, category):
    product = create(seller, category)

    with pytest.raises(ValueError, match="is_featured"):
        product_update(product=product, seller=seller, is_featured=True)


def test_product_update_to_a_taken_slug_is_refused(seller, category):
    create(seller, category, slug="taken")
    product = create(seller, category, title="Other")

    with pytest.raises(ValidationError) as exc:
        product_update(product=product, seller=seller, slug="taken")

    assert exc.value.message_dict == {"slug": [SLUG_TAKEN]}


def test_product_set_active_hides_and_lists_again(seller, other_seller, category):
    product = create(seller, category)

    product_set_active(product=product, seller=seller, active=False)
    assert not Product.objects.get(pk=product.pk).is_active

    with pytest.raises(PermissionDenied):
        product_set_active(product=product, seller=other_seller, active=True)
    assert not Product.objects.get(pk=product.pk).is_active

    product_set_active(product=product, seller=seller, active=True)
    assert Product.objects.get(pk=product.pk).is_active


def test_products_set_active_bulk_counts_only_real_changes():
    ProductFactory.create_batch(2)
    ProductFactory(is_active=False)

    assert products_set_active_bulk(products=Product.objects.all(), active=False) == 2
    assert not Product.objects.filter(is_active=True).exists()
