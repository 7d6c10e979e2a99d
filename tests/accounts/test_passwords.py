"""Passwords are hashed with Argon2; older PBKDF2 hashes are upgraded at login."""

import pytest
from django.contrib.auth.hashers import make_password
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_new_passwords_use_argon2_and_old_pbkdf2_hashes_upgrade_at_login(client, settings):
    # The suite swaps in MD5 for speed; put the production list back for this test.
    from marketplace import settings as production

    settings.PASSWORD_HASHERS = production.PASSWORD_HASHERS
    user = UserFactory(email="old@example.com")
    user.set_password("a new pass phrase")
    assert user.password.startswith("argon2$")
    user.password = make_password("an old pass phrase", hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])

    response = client.post(
        reverse("accounts:login"), {"username": "old@example.com", "password": "an old pass phrase"}
    )
    assert response.status_code == 302

    user.refresh_from_db()
    assert user.password.startswith("argon2$")
