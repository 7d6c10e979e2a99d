"""Races that only a real database shows: two requests claim the same unique
name at once. The loser gets a clear error, never a 500, and nothing half-written.

Each test holds the winner's transaction open while the loser runs, so the
loser passes the "is it free?" check and then meets the unique index: the
outcome is deterministic, not left to timing luck.
"""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Seller, User
from accounts.services import EMAIL_TAKEN, SLUG_TAKEN, seller_sign_up, user_sign_up
from marketplace.models import Product
from marketplace.services.products import SLUG_TAKEN as PRODUCT_SLUG_TAKEN
from marketplace.services.products import product_create
from tests.concurrency import race
from tests.factories import CategoryFactory, SellerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_sellers_claiming_one_product_slug_at_once():
    category = CategoryFactory()
    a, b = SellerFactory(), SellerFactory()

    def create(seller):
        return lambda: product_create(
            seller=seller,
            title="Teapot",
            slug="teapot",
            category=category,
            price_minor=100,
            currency="USD",
            stock=1,
        )

    outcome = race(create(a), create(b))

    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert outcome["error"].message_dict == {"slug": [PRODUCT_SLUG_TAKEN]}
    assert list(Product.objects.values_list("seller", flat=True)) == [a.pk]


def test_two_sign_ups_with_one_email_at_once():
    def sign_up(email):
        return lambda: user_sign_up(email=email, password="a-long-unusual-pass")

    outcome = race(sign_up("race@example.com"), sign_up("RACE@example.com"))

    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert outcome["error"].message_dict == {"email": [EMAIL_TAKEN]}
    assert User.objects.filter(email__iexact="race@example.com").count() == 1


def test_two_shops_claiming_one_storefront_address_at_once_leave_no_orphan_user():
    def open_shop(email):
        return lambda: seller_sign_up(
            email=email,
            password="a-long-unusual-pass",
            display_name="Same Name",
            slug="same-name",
            country="US",
            default_currency="USD",
        )

    outcome = race(open_shop("first@example.com"), open_shop("second@example.com"))

    assert isinstance(outcome.get("error"), ValidationError), outcome
    assert outcome["error"].message_dict == {"slug": [SLUG_TAKEN]}
    assert list(Seller.objects.values_list("user__email", flat=True)) == ["first@example.com"]
    assert not User.objects.filter(email="second@example.com").exists()
