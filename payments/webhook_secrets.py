"""Webhook endpoint secrets, encrypted at rest with Fernet.

This module stays at the top of ``payments`` because ``payments.models`` (the
endpoint's secret property) and migration 0031 imports it; it imports
nothing of the project. Re-encrypting every stored secret is
``payments.integrations.secrets``.

The keys come from ``settings.WEBHOOK_SECRET_KEYS`` (the ``WEBHOOK_SECRET_KEYS``
environment variable: comma-separated Fernet keys). The first key encrypts; every
key decrypts, so a key is rotated by putting a new one first, running
``manage.py webhook_secrets_reencrypt`` and then dropping the old one. With
``DEBUG`` on and no key, settings derive a development key from ``SECRET_KEY``;
with ``DEBUG`` off and no key the app refuses to start.

The database only ever holds the Fernet tokens; a secret is decrypted when a
delivery is signed, and shown to its owner only on creation and on rotation.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SECRET_PREFIX = "whsec_"
HINT_CHARS = 4


class SecretUndecryptable(Exception):
    """A stored secret that none of the configured keys opens (a key was dropped
    before ``webhook_secrets_reencrypt`` ran)."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ValueError("WEBHOOK_SECRET_KEYS holds no key.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.WEBHOOK_SECRET_KEYS))


def secret_generate() -> str:
    """A new signing secret: ``whsec_`` and 256 random bits."""
    return f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"


def secret_encrypt(secret: str) -> str:
    """The Fernet token of ``secret`` under the first key ("" stays "")."""
    if not secret:
        return ""
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The secret in a token made with any configured key ("" stays "")."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUndecryptable("No configured WEBHOOK_SECRET_KEYS key opens it.") from exc


def secret_reencrypt(token: str) -> str:
    """The same secret, encrypted again with the first key ("" stays "")."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUndecryptable("No configured WEBHOOK_SECRET_KEYS key opens it.") from exc


def secret_hint(token: str) -> str:
    """What lists show of an encrypted secret: its last characters, e.g. ``whsec_…x4Qz``
    (or that no configured key opens it: the page still shows, the secret does not)."""
    try:
        secret = secret_decrypt(token)
    except SecretUndecryptable:
        return "(unreadable with the configured keys: rotate it)"
    if not secret:
        return ""
    return f"{SECRET_PREFIX}…{secret[-HINT_CHARS:]}"
