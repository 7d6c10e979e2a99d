import re

import pytest
from django.urls import reverse

from accounts.models import Seller, User
from tests.factories import PASSWORD, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGN_UP = reverse("accounts:sign_up")
SELLER_SIGN_UP = reverse("accounts:seller_sign_up")
BECOME = reverse("accounts:seller_become")
LOGIN = reverse("accounts:login")


def sign_up_data(**overrides):
    data = {
        "email": "new@example.com",
        "full_name": "New Person",
        "password1": "a-long-unusual-pass",
        "password2": "a-long-unusual-pass",
    }
    return data | overrides


def seller_data(**overrides):
    data = sign_up_data() | {
        "display_name": "Paper Goods",
        "slug": "",
        "country": "GB",
        "default_currency": "GBP",
    }
    return data | overrides


def logged_in_user(client):
    return client.get(reverse("accounts:profile")).wsgi_request.user


def test_customer_sign_up_logs_in_and_redirects_home(client):
    response = client.post(SIGN_UP, sign_up_data())

    assert response.status_code == 302
    assert response.url == reverse("marketplace:home")
    user = User.objects.get(email="new@example.com")
    assert logged_in_user(client) == user
    assert not Seller.objects.filter(user=user).exists()


def test_customer_sign_up_follows_a_safe_next_url_only(client):
    response = client.post(SIGN_UP + "?next=/products/", sign_up_data())
    assert response.url == "/products/"

    client.logout()
    response = client.post(
        SIGN_UP + "?next=https://evil.example/", sign_up_data(email="two@example.com")
    )
    assert response.url == reverse("marketplace:home")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (sign_up_data(email="TAKEN@example.com"), "email", "already exists"),
        (sign_up_data(password1="password", password2="password"), "password2", "too common"),
        (sign_up_data(password1="short1", password2="short1"), "password2", "too short"),
        (sign_up_data(password2="something-else-entirely"), "password2", "didn’t match"),
        (sign_up_data(email="not-an-email"), "email", "valid email"),
    ],
    ids=["duplicate-email", "common-password", "short-password", "mismatch", "bad-email"],
)
def test_customer_sign_up_bad_input_shows_the_error_and_creates_nothing(
    client, data, field, message
):
    UserFactory(email="taken@example.com")

    response = client.post(SIGN_UP, data)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert User.objects.count() == 1
    assert not logged_in_user(client).is_authenticated


def test_seller_sign_up_creates_a_seller_and_opens_my_products(client):
    response = client.post(SELLER_SIGN_UP, seller_data())

    assert response.status_code == 302
    assert response.url == reverse("marketplace:seller_product_list")
    seller = Seller.objects.get()
    assert (seller.display_name, seller.slug, seller.country.code, seller.default_currency) == (
        "Paper Goods",
        "paper-goods",
        "GB",
        "GBP",
    )
    assert logged_in_user(client) == seller.user


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "taken"}, "slug"),
        ({"slug": "Not A Slug!"}, "slug"),
        ({"country": ""}, "country"),
        ({"default_currency": "BTC"}, "default_currency"),
        ({"display_name": ""}, "display_name"),
    ],
)
def test_seller_sign_up_bad_input_shows_the_error_and_creates_nothing(client, overrides, field):
    SellerFactory(slug="taken")

    response = client.post(SELLER_SIGN_UP, seller_data(**overrides))

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert User.objects.count() == 1
    assert Seller.objects.count() == 1


def test_customer_becomes_a_seller(customer_client, customer):
    response = customer_client.post(
        BECOME, {"display_name": "Side Hustle", "country": "DE", "default_currency": "EUR"}
    )

    assert response.status_code == 302
    assert customer.seller.slug == "side-hustle"


def test_become_a_seller_needs_a_login(client):
    response = client.get(BECOME)

    assert response.status_code == 302
    assert response.url.startswith(LOGIN)


def test_a_seller_visiting_become_a_seller_goes_to_their_products(seller_client):
    response = seller_client.get(BECOME)

    assert response.status_code == 302
    assert response.url == reverse("marketplace:seller_product_list")


def test_login_with_email_in_any_case(client):
    user = UserFactory(email="mixed@example.com")

    response = client.post(LOGIN, {"username": "MIXED@Example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert logged_in_user(client) == user


def test_login_with_a_wrong_password_shows_an_error(client):
    UserFactory(email="someone@example.com")

    response = client.post(LOGIN, {"username": "someone@example.com", "password": "nope"})

    assert response.status_code == 200
    assert "correct email address and password" in response.content.decode()
    assert not logged_in_user(client).is_authenticated


def test_logout_is_a_post(customer_client):
    assert customer_client.get(reverse("accounts:logout")).status_code == 405

    response = customer_client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert not logged_in_user(customer_client).is_authenticated


def test_password_change(customer_client, customer):
    response = customer_client.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another-long-pass-9",
            "new_password2": "another-long-pass-9",
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:password_change_done")
    customer.refresh_from_db()
    assert customer.check_password("another-long-pass-9")


def test_password_reset_sends_a_working_link(client, customer, mailoutbox):
    response = client.post(reverse("accounts:password_reset"), {"email": customer.email})

    assert response.status_code == 302
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [customer.email]
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mailoutbox[0].body)
    assert link, mailoutbox[0].body

    form_page = client.get(link.group(1), follow=True)
    assert form_page.context["validlink"]
    response = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "fresh-long-pass-42", "new_password2": "fresh-long-pass-42"},
    )
    assert response.url == reverse("accounts:password_reset_complete")
    customer.refresh_from_db()
    assert customer.check_password("fresh-long-pass-42")


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, mailoutbox):
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert mailoutbox == []


def test_profile_shows_roles_and_saves_the_name(seller_client, seller):
    page = seller_client.get(reverse("accounts:profile"))
    assert "Customer, seller" in page.content.decode()

    seller_client.post(reverse("accounts:profile"), {"full_name": "Renamed"})

    seller.user.refresh_from_db()
    assert seller.user.full_name == "Renamed"


def test_profile_needs_a_login(client):
    assert client.get(reverse("accounts:profile")).status_code == 302


def test_an_operator_logs_in_to_the_admin_with_their_email(client, operator):
    response = client.post(
        reverse("admin:login"),
        {"username": operator.email.upper(), "password": PASSWORD, "next": "/admin/"},
    )

    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize(
    ("who", "shown", "hidden"),
    [
        ("anonymous", ["Log in", "Sign up"], ["My shop", ">Admin<"]),
        ("customer", [">Sell<", "Log out"], ["My shop", ">Admin<"]),
        ("seller", ["My shop", "Log out"], [">Sell<", ">Admin<"]),
        ("operator", [">Admin<", "Log out"], ["My shop"]),
    ],
)
def test_the_header_shows_what_each_role_can_do(client, request, who, shown, hidden):
    if who != "anonymous":
        user = request.getfixturevalue(who)
        client.force_login(user.user if who == "seller" else user)

    html = client.get(reverse("marketplace:home")).content.decode()

    for text in shown:
        assert text in html
    for text in hidden:
        assert text not in html
