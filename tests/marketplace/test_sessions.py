"""Sessions (marketplace/sessions.py) and the user they sign in (marketplace/auth_backends.py):
sessions made before a deploy keep working, a password change signs the other sessions out,
an inactive user is not signed in, and sessions work while the cache is down."""

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.urls import reverse

from tests.factories import UserFactory


def _redis_down():
    from django.core.cache.backends.redis import RedisCache

    return RedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"socket_connect_timeout": 1}})


@pytest.mark.django_db
def test_a_session_signed_in_before_the_deploy_stays_signed_in(client):
    user = UserFactory()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key

    response = client.get(reverse("marketplace:order_list"))

    assert response.status_code == 200


@pytest.mark.django_db
def test_a_password_change_signs_out_the_other_sessions_with_the_new_backend(client):
    """Sound: the session's password hash is checked by django.contrib.auth.get_user,
    whatever backend reads the user."""
    user = UserFactory()
    client.force_login(user, backend="marketplace.auth_backends.ShopUserBackend")
    assert client.get(reverse("marketplace:order_list")).status_code == 200
    user.set_password("a-new-and-long-password-42")
    user.save()

    assert client.get(reverse("marketplace:order_list")).status_code == 302


@pytest.mark.django_db
def test_an_inactive_user_s_session_is_not_signed_in(client):
    """Sound: ShopUserBackend.get_user keeps ModelBackend's is_active check."""
    user = UserFactory()
    client.force_login(user, backend="marketplace.auth_backends.ShopUserBackend")
    user.is_active = False
    user.save()

    assert client.get(reverse("marketplace:order_list")).status_code == 302


@pytest.mark.django_db
def test_a_visitor_s_new_session_is_saved_while_the_cache_is_down():
    from django.contrib.sessions.models import Session

    from marketplace.sessions import SessionStore

    store = SessionStore()
    store._cache = _redis_down()
    store["cart"] = {"7": 1}

    store.save()

    assert Session.objects.filter(session_key=store.session_key).exists()


@pytest.mark.django_db
def test_signing_in_works_while_the_cache_is_down():
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore

    from marketplace.sessions import SessionStore

    stored = DatabaseStore()
    stored["cart"] = {"7": 1}
    stored.save()
    store = SessionStore(stored.session_key)
    store._cache = _redis_down()
    assert store["cart"] == {"7": 1}  # read from the database

    store.cycle_key()  # what login() does

    assert store["cart"] == {"7": 1} and store.session_key != stored.session_key
