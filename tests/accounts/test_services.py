import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from accounts.models import Seller, User
from accounts.roles import OPERATORS_GROUP, is_operator, seller_for
from accounts.services import (
    EMAIL_TAKEN,
    SLUG_TAKEN,
    operator_grant,
    profile_update,
    seller_become,
    seller_sign_up,
    user_sign_up,
)
from tests.factories import SellerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_user_sign_up_stores_the_email_in_lower_case_and_hashes_the_password():
    user = user_sign_up(email="  Ada@Example.COM ", password="s3cret-enough", full_name="Ada")

    assert user.email == "ada@example.com"
    assert user.check_password("s3cret-enough")
    assert not user.is_staff and not user.is_superuser


def test_user_sign_up_refuses_an_email_taken_in_another_case_and_writes_nothing():
    UserFactory(email="ada@example.com")

    with pytest.raises(ValidationError) as exc:
        user_sign_up(email="ADA@example.com", password="whatever-123")

    assert exc.value.message_dict == {"email": [EMAIL_TAKEN]}
    assert User.objects.count() == 1


def test_seller_sign_up_creates_the_user_and_the_seller_together():
    seller = seller_sign_up(
        email="shop@example.com",
        password="s3cret-enough",
        display_name="Café Crème",
        country="FR",
        default_currency="EUR",
    )

    assert seller.slug == "cafe-creme"
    assert seller.user.email == "shop@example.com"
    assert seller.payout_status == Seller.PayoutStatus.NOT_STARTED
    assert seller_for(seller.user) == seller


def test_seller_sign_up_with_a_taken_slug_creates_neither_user_nor_seller():
    SellerFactory(slug="acme")

    with pytest.raises(ValidationError) as exc:
        seller_sign_up(
            email="new@example.com",
            password="s3cret-enough",
            display_name="Acme",
            slug="acme",
            country="US",
            default_currency="USD",
        )

    assert exc.value.message_dict == {"slug": [SLUG_TAKEN]}
    assert not User.objects.filter(email="new@example.com").exists()
    assert Seller.objects.count() == 1


def test_seller_become_without_a_slug_picks_a_free_one():
    SellerFactory(slug="acme")
    user = UserFactory()

    seller = seller_become(user=user, display_name="Acme", country="US", default_currency="USD")

    assert seller.slug == "acme-2"


def test_seller_become_refuses_a_second_shop_for_the_same_user():
    seller = SellerFactory()

    with pytest.raises(ValidationError):
        seller_become(user=seller.user, display_name="Again", country="US", default_currency="USD")

    assert Seller.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("country", "XX"), ("default_currency", "XYZ"), ("display_name", "")],
)
def test_seller_become_validates_its_fields(field, value):
    data = {"display_name": "Shop", "country": "US", "default_currency": "USD"}
    data[field] = value

    with pytest.raises(ValidationError) as exc:
        seller_become(user=UserFactory(), **data)

    assert field in exc.value.message_dict
    assert not Seller.objects.exists()


def test_operator_grant_makes_a_staff_member_of_the_operators_group_not_a_superuser():
    user = operator_grant(user=UserFactory())

    user.refresh_from_db()
    assert user.is_staff and not user.is_superuser
    assert user.groups.filter(name=OPERATORS_GROUP).exists()
    assert is_operator(user)


def test_operators_group_holds_catalog_permissions_but_cannot_delete_users():
    group = Group.objects.get(name=OPERATORS_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))

    assert {"add_product", "change_product", "delete_product", "view_category"} <= codenames
    assert {"view_user", "change_user", "change_seller"} <= codenames
    assert "delete_user" not in codenames
    assert "change_group" not in codenames


def test_roles_of_a_customer():
    user = UserFactory()

    assert seller_for(user) is None
    assert not is_operator(user)


def test_staff_outside_the_operators_group_is_not_an_operator():
    assert not is_operator(UserFactory(is_staff=True))


def test_profile_update_changes_the_name():
    user = profile_update(user=UserFactory(full_name="Old"), full_name="New Name")

    user.refresh_from_db()
    assert user.full_name == "New Name"


def test_reserved_shop_addresses_are_refused_or_avoided(db):
    import pytest as _pytest
    from django.core.exceptions import ValidationError

    from accounts.services import seller_become
    from tests.factories import UserFactory

    with _pytest.raises(ValidationError) as refused:
        seller_become(
            user=UserFactory(), display_name="Me", country="US", default_currency="USD", slug="me"
        )
    assert "reserved" in str(refused.value)
    shop = seller_become(
        user=UserFactory(), display_name="Me", country="US", default_currency="USD"
    )
    assert shop.slug == "me-shop"
