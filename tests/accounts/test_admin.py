import pytest
from django.urls import reverse

from accounts.models import User
from marketplace.models import Product
from tests.factories import ProductFactory, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:index",
        "admin:marketplace_product_changelist",
        "admin:marketplace_product_add",
        "admin:marketplace_category_changelist",
        "admin:accounts_seller_changelist",
        "admin:accounts_user_changelist",
        "admin:django_celery_beat_periodictask_changelist",
    ],
)
def test_an_operator_who_is_not_superuser_can_open_the_admin_pages(operator_client, url_name):
    ProductFactory()

    response = operator_client.get(reverse(url_name))

    assert response.status_code == 200


@pytest.mark.parametrize("who", ["customer", "seller"])
def test_customers_and_sellers_get_nothing_in_admin(client, who, request):
    user = request.getfixturevalue(who)
    client.force_login(user if who == "customer" else user.user)

    for url in (reverse("admin:index"), reverse("admin:marketplace_product_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


def test_an_operator_cannot_grant_roles_or_superuser(operator_client, operator):
    target = UserFactory(email="target@example.com")

    page = operator_client.get(reverse("admin:accounts_user_change", args=[target.pk]))
    form_fields = page.context["adminform"].form.fields
    assert "is_superuser" not in form_fields
    assert "groups" not in form_fields
    assert "is_staff" not in form_fields

    operator_client.post(
        reverse("admin:accounts_user_change", args=[operator.pk]),
        {"email": operator.email, "full_name": "Me", "is_active": "on", "is_superuser": "on"},
    )
    operator.refresh_from_db()
    assert not operator.is_superuser


def test_an_operator_cannot_delete_users(operator_client):
    target = UserFactory()

    response = operator_client.post(
        reverse("admin:accounts_user_delete", args=[target.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert User.objects.filter(pk=target.pk).exists()


def test_product_search_and_filters_in_admin(operator_client):
    ProductFactory(title="Blue Teapot", seller=SellerFactory(display_name="Potter"))
    ProductFactory(title="Red Kettle")

    response = operator_client.get(reverse("admin:marketplace_product_changelist"), {"q": "potter"})

    titles = [p.title for p in response.context["cl"].result_list]
    assert titles == ["Blue Teapot"]


def test_admin_actions_hide_and_list_products(operator_client):
    shown, hidden = ProductFactory(), ProductFactory(is_active=False)
    url = reverse("admin:marketplace_product_changelist")

    operator_client.post(
        url, {"action": "unlist_products", "_selected_action": [shown.pk, hidden.pk]}
    )
    assert not Product.objects.filter(is_active=True).exists()

    operator_client.post(url, {"action": "list_products", "_selected_action": [shown.pk]})
    assert list(Product.objects.filter(is_active=True)) == [shown]


@pytest.mark.parametrize(
    ("price", "stored", "error"),
    [
        ("1,250.50", 125050, ""),
        # A decimal comma is refused, never read as a thousands separator (1,250.00).
        (
            "12,50",
            1000,
            "Use a point before the decimals (12.50) and commas only between thousands (1,250.50).",
        ),
        ("NaN", 1000, "Enter an amount such as 12.50."),
        ("1e309", 1000, "Enter an amount such as 12.50."),
    ],
)
def test_the_product_price_typed_in_admin_is_read_as_meant(operator_client, price, stored, error):
    product = ProductFactory(price_minor=1000, currency="USD", stock=3)
    url = reverse("admin:marketplace_product_change", args=[product.pk])
    data = {
        "seller": product.seller_id,
        "title": product.title,
        "slug": product.slug,
        "description": "A book",
        "currency": "USD",
        "stock": "3",
        "is_active": "on",
        "price": price,
    }
    if product.category_id:
        data["category"] = product.category_id

    response = operator_client.post(url, data)

    product.refresh_from_db()
    assert product.price_minor == stored
    if error:
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["price"] == [error]
    else:
        assert response.status_code == 302
