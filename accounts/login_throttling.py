"""Login throttling (django-axes): how an attempt is named.

Attempts are counted per email address as we store it (trimmed, lower case) and
client address, so "Alice@Example.com " and "alice@example.com" are the same
account to the counter as they are to the login.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.managers import normalize_email_address


def attempted_email(request: HttpRequest, credentials: dict | None) -> str:
    """The email a login attempt was for (``AXES_USERNAME_CALLABLE``)."""
    submitted = (credentials or {}).get("username") or request.POST.get("username", "")
    return normalize_email_address(str(submitted))
