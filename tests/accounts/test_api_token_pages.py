import pytest
from django.urls import reverse

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_a_seller_creates_a_token_sees_it_once_and_revokes_it(seller_client, seller):
    url = reverse("accounts:api_tokens")

    created = seller_client.post(url, {"name": "Accounting export"})

    token = ApiToken.objects.get(user=seller.user)
    raw = created.context["issued"].raw
    assert raw in created.text and created["Cache-Control"] == "no-store"
    assert raw not in seller_client.get(url).text  # shown once
    assert token.secret_hash not in created.text
    api = seller_client.get(reverse("api:my-balance"), HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 200

    seller_client.post(reverse("accounts:api_token_revoke", args=[token.pk]))

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "Revoked" in seller_client.get(url).text


def test_a_token_needs_a_name_and_nobody_revokes_anothers(seller_client, client, customer):
    from accounts.tokens import api_token_create

    page = seller_client.post(reverse("accounts:api_tokens"), {"name": " "})
    assert page.status_code == 200 and not ApiToken.objects.filter(user__email="seller@example.com")

    theirs = api_token_create(user=customer, name="mine").token
    seller_client.post(reverse("accounts:api_token_revoke", args=[theirs.pk]))
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_the_token_page_needs_a_login(client):
    response = client.get(reverse("accounts:api_tokens"))
    assert response.status_code == 302 and "/login/" in response.url
