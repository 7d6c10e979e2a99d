"""API tokens: create, revoke, and find the user a presented token belongs to."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from marketplace.kernel.errors import InvalidRequest, NotFound

TOKEN_PREFIX = "mkt"
MAX_ACTIVE_TOKENS = 20
LAST_USED_PRECISION = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # shown to the user once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: User, name: str) -> IssuedToken:
    """A new token for ``user``; the raw value exists only in the result."""
    name = name.strip()
    if not name:
        raise InvalidRequest("Give the token a name, so you know later what uses it.")
    User.objects.select_for_update().get(pk=user.pk)
    if user.api_tokens.filter(revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise InvalidRequest(f"You have {MAX_ACTIVE_TOKENS} tokens; revoke one first.")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name[:80], prefix=prefix, secret_hash=_hash(secret)
    )
    return IssuedToken(token, f"{TOKEN_PREFIX}_{prefix}_{secret}")


def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; revoking twice changes nothing."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_user(raw: str) -> tuple[User, ApiToken] | None:
    """The active user and token a raw token belongs to, or None."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(prefix=parts[1], revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(parts[2])):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user, token
