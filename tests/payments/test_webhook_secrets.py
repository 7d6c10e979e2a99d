"""Webhook secrets: encrypted at rest, rotated with an overlap window, re-encrypted
when the encryption key is rotated, and required in production."""

import importlib
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from payments.integrations.events import webhook_retention_apply
from payments.integrations.webhooks import (
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_endpoint_secret_rotate,
)
from payments.models import WebhookDelivery, WebhookEndpoint
from payments.webhook_secrets import SecretUndecryptable

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def documented_verify():
    """The ``verify`` function docs/api.md gives receivers, run as written."""
    text = (ROOT / "docs" / "api.md").read_text()
    block = next(
        part.split("```", 1)[0]
        for part in text.split("```python\n")[1:]
        if "def verify(" in part.split("```", 1)[0]
    )
    namespace = {}
    exec(block, namespace)
    return namespace["verify"]


def receiver_accepts(secret, headers, body):
    """What docs/api.md tells receivers to do: accept a fresh delivery if any ``v1``
    matches (call it at the time the delivery is received)."""
    return documented_verify()(secret, headers["Marketplace-Signature"], body)


def deliver(endpoint):
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={"order": 1}
    )
    webhook_delivery_attempt(delivery_id=delivery.pk)


def raw_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM payments_webhookendpoint")
        return [" ".join(str(value) for value in row) for row in cursor.fetchall()]


def test_the_database_never_holds_a_secret_in_clear_text(receiver, seller):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    first = endpoint.secret
    _, second = webhook_endpoint_secret_rotate(endpoint=endpoint, expires_in_hours=24)

    rows = raw_rows()

    assert first.startswith("whsec_") and second.startswith("whsec_") and first != second
    assert len(rows) == 1
    assert first not in rows[0] and second not in rows[0]
    assert first.removeprefix("whsec_") not in rows[0]
    stored = WebhookEndpoint.objects.get()
    assert stored.secret == second  # and the app reads it back
    assert stored.signing_secrets(timezone.now()) == [second, first]


def test_during_the_overlap_either_secret_verifies_then_only_the_new_one(receiver, seller):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    old = endpoint.secret
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        endpoint, new = webhook_endpoint_secret_rotate(endpoint=endpoint, expires_in_hours=24)

    with time_machine.travel(start + timedelta(hours=23), tick=False):
        deliver(endpoint)
        during_headers, during_body = receiver.requests[-1].headers, receiver.requests[-1].body
        during = [receiver_accepts(key, during_headers, during_body) for key in (old, new)]
    with time_machine.travel(start + timedelta(hours=24, minutes=1), tick=False):
        deliver(endpoint)
        after_headers, after_body = receiver.requests[-1].headers, receiver.requests[-1].body
        after = [receiver_accepts(key, after_headers, after_body) for key in (old, new)]

    assert during_headers["Marketplace-Signature"].count("v1=") == 2
    assert during == [True, True]
    assert after_headers["Marketplace-Signature"].count("v1=") == 1
    assert after == [False, True]


def test_after_the_window_the_old_secret_is_dropped_from_the_database(seller, settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    webhook_endpoint_secret_rotate(endpoint=endpoint, expires_in_hours=1)

    webhook_retention_apply(now=timezone.now() + timedelta(minutes=30))
    assert WebhookEndpoint.objects.get().previous_secret_encrypted != ""
    webhook_retention_apply(now=timezone.now() + timedelta(hours=2))

    endpoint.refresh_from_db()
    assert (endpoint.previous_secret_encrypted, endpoint.previous_secret_expires_at) == ("", None)


def test_a_rotation_without_overlap_stops_the_old_secret_at_once(receiver, seller):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    old = endpoint.secret

    endpoint, new = webhook_endpoint_secret_rotate(endpoint=endpoint, expires_in_hours=0)
    deliver(endpoint)

    headers, body = receiver.requests[0].headers, receiver.requests[0].body
    assert [receiver_accepts(key, headers, body) for key in (old, new)] == [False, True]


def test_key_rotation_reencrypts_every_secret_with_the_first_key(settings, seller):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [old_key]
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    endpoint, _ = webhook_endpoint_secret_rotate(endpoint=endpoint, expires_in_hours=24)
    current, previous = endpoint.signing_secrets(timezone.now())

    settings.WEBHOOK_SECRET_KEYS = [new_key, old_key]
    out = io.StringIO()
    call_command("webhook_secrets_reencrypt", stdout=out)
    settings.WEBHOOK_SECRET_KEYS = [new_key]  # the old key is dropped

    stored = WebhookEndpoint.objects.get()
    assert stored.signing_secrets(timezone.now()) == [current, previous]
    assert "Re-encrypted the secrets of 1 endpoint(s)." in out.getvalue()
    assert Fernet(new_key.encode()).decrypt(stored.secret_encrypted.encode()).decode() == current


def test_reencrypting_without_the_old_key_changes_nothing(settings, seller):
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    webhook_endpoint_create(owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"])
    before = raw_rows()

    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("webhook_secrets_reencrypt")

    assert raw_rows() == before
    with pytest.raises(SecretUndecryptable):
        WebhookEndpoint.objects.get().secret  # noqa: B018


def test_the_migration_encrypts_secrets_stored_in_clear_text(seller):
    migration = importlib.import_module(
        "payments.migrations.0031_events_and_encrypted_webhook_secrets"
    )
    endpoint = WebhookEndpoint.objects.create(
        owner=seller.user, seller=seller, url="https://example.com/h", events=["order.paid"]
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted="whsec_from_before")

    migration.encrypt_secrets(apps, None)

    assert "whsec_from_before" not in raw_rows()[0]
    assert WebhookEndpoint.objects.get().secret == "whsec_from_before"


def _check(**variables):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "WEBHOOK_SECRET_KEYS", "ALLOWED_HOSTS"}
    }
    env |= {"DJANGO_SETTINGS_MODULE": "marketplace.settings", **variables}
    code = "import django, json; django.setup(); from django.conf import settings as s; "
    code += "print(json.dumps(s.WEBHOOK_SECRET_KEYS))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("debug", ["0", "1"])
def test_keys_come_from_the_environment_and_production_requires_them(tmp_path, debug):
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    production = {"SECRET_KEY": "k" * 50, "ALLOWED_HOSTS": "shop.example.com"}

    given = _check(
        DEBUG=debug, VAR_DIR=str(tmp_path), WEBHOOK_SECRET_KEYS=",".join(keys), **production
    )
    missing = _check(DEBUG=debug, VAR_DIR=str(tmp_path), **production)

    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout.splitlines()[-1]) == keys
    if debug == "0":
        assert missing.returncode != 0
        assert "WEBHOOK_SECRET_KEYS must be set when DEBUG is off." in missing.stderr
    else:  # development: a key derived from SECRET_KEY
        assert missing.returncode == 0, missing.stderr
        (derived,) = json.loads(missing.stdout.splitlines()[-1])
        Fernet(derived.encode())  # a valid Fernet key


def test_a_key_that_is_not_a_fernet_key_refuses_to_start(tmp_path):
    result = _check(VAR_DIR=str(tmp_path), WEBHOOK_SECRET_KEYS="not-a-key")

    assert result.returncode != 0
    assert "WEBHOOK_SECRET_KEYS must be Fernet keys" in result.stderr


def test_the_admin_shows_only_the_end_of_the_secret(operator_client, seller, settings):
    from django.urls import reverse

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )

    page = operator_client.get(reverse("admin:payments_webhookendpoint_change", args=[endpoint.pk]))

    assert page.status_code == 200
    assert "whsec_…" + endpoint.secret[-4:] in page.text
    assert endpoint.secret not in page.text and endpoint.secret_encrypted not in page.text


def test_an_update_racing_a_rotation_does_not_bring_the_old_secret_back(settings, seller):
    """PATCH loads the endpoint, a rotation commits, then PATCH saves: the rotated
    secret (the one the owner was just given) must still be the one that signs."""
    from payments.integrations.webhooks import (
        webhook_endpoint_create,
        webhook_endpoint_secret_rotate,
        webhook_endpoint_update,
    )
    from payments.models import WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    loaded_by_the_patch = WebhookEndpoint.objects.get(pk=endpoint.pk)
    _, new_secret = webhook_endpoint_secret_rotate(
        endpoint=WebhookEndpoint.objects.get(pk=endpoint.pk), expires_in_hours=1
    )

    webhook_endpoint_update(endpoint=loaded_by_the_patch, description="renamed")

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert stored.description == "renamed"
    assert stored.secret == new_secret
    assert stored.previous_secret_expires_at is not None


def test_two_rotations_from_stale_reads_keep_the_first_new_secret_in_the_overlap(settings, seller):
    """Two rotations that loaded the endpoint before either saved: the second must keep
    the first one's new secret (just handed out) as the previous one, not the original."""
    from payments.integrations.webhooks import (
        webhook_endpoint_create,
        webhook_endpoint_secret_rotate,
    )
    from payments.models import WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    first_read = WebhookEndpoint.objects.get(pk=endpoint.pk)
    second_read = WebhookEndpoint.objects.get(pk=endpoint.pk)

    _, first = webhook_endpoint_secret_rotate(endpoint=first_read, expires_in_hours=1)
    _, second = webhook_endpoint_secret_rotate(endpoint=second_read, expires_in_hours=1)

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert stored.secret == second
    assert stored.signing_secrets(stored.previous_secret_expires_at.replace(year=2000)) == [
        second,
        first,
    ]
