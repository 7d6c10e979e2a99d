"""Login throttling: five wrong passwords for one email from one address lock that
pair out for 15 minutes, on the site and in the admin alike."""

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


def attempt(client, email, password, ip="203.0.113.7", url=LOGIN):
    return client.post(url, {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_out_that_email_from_that_address(client):
    UserFactory(email="maya@example.com")
    for _ in range(4):
        assert attempt(client, "maya@example.com", "wrong").status_code == 200

    fifth = attempt(client, "Maya@Example.com ", "wrong")  # the same account, spelled so
    right = attempt(client, "maya@example.com", PASSWORD)
    elsewhere = attempt(client, "maya@example.com", PASSWORD, ip="198.51.100.2")

    assert fifth.status_code == 429
    assert "Too many failed attempts" in fifth.text and "Reset your password" in fifth.text
    assert "is paused for 15\xa0minutes" in fifth.text
    assert right.status_code == 429  # even the right password, until the cool-off ends
    assert elsewhere.status_code == 302  # another address is not locked out


def test_the_lockout_ends_after_the_cool_off(client):
    UserFactory(email="maya@example.com")
    for _ in range(5):
        attempt(client, "maya@example.com", "wrong")

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        assert attempt(client, "maya@example.com", PASSWORD).status_code == 302


def test_a_right_password_before_the_limit_starts_the_count_again(client):
    UserFactory(email="maya@example.com")
    for _ in range(4):
        attempt(client, "maya@example.com", "wrong")
    assert attempt(client, "maya@example.com", PASSWORD).status_code == 302
    client.logout()

    for _ in range(4):
        assert attempt(client, "maya@example.com", "wrong").status_code == 200


def test_the_admin_login_is_throttled_too(client):
    UserFactory(email="ops@example.com", is_staff=True)
    admin_login = reverse("admin:login")
    for _ in range(5):
        attempt(client, "ops@example.com", "wrong", url=admin_login)

    assert attempt(client, "ops@example.com", PASSWORD, url=admin_login).status_code == 429


def test_attempts_keep_no_password(client):
    attempt(client, "maya@example.com", "hunter2-secret")

    stored = AccessAttempt.objects.get()
    assert "hunter2-secret" not in stored.post_data
    assert stored.username == "maya@example.com"


def test_an_operator_can_lift_a_lockout_in_the_admin(client, operator):
    from accounts.roles import operators_group_sync

    operators_group_sync()
    for _ in range(5):
        attempt(client, "maya@example.com", "wrong")
    client.force_login(operator)
    lockout = AccessAttempt.objects.get()
    url = reverse("admin:axes_accessattempt_delete", args=[lockout.pk])

    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not AccessAttempt.objects.exists()
