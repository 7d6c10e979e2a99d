"""Re-encrypting every stored webhook endpoint secret with the first key of
``WEBHOOK_SECRET_KEYS``, so the other keys can be dropped (the rotation procedure is
in ``payments/webhook_secrets.py``)."""

from __future__ import annotations

from django.db import transaction

from payments.models import WebhookEndpoint
from payments.webhook_secrets import secret_reencrypt


def webhook_secrets_reencrypt() -> int:
    """Encrypt every stored endpoint secret (current and kept-after-rotation) again with
    the first key, so the other keys can be dropped. All or nothing, safe to repeat:
    raises ``SecretUndecryptable``, changing nothing, when a secret opens with no
    configured key. Returns how many endpoints were rewritten."""
    rewritten = 0
    with transaction.atomic():
        for endpoint in WebhookEndpoint.objects.select_for_update().only(
            "pk", "secret_encrypted", "previous_secret_encrypted"
        ):
            endpoint.secret_encrypted = secret_reencrypt(endpoint.secret_encrypted)
            endpoint.previous_secret_encrypted = secret_reencrypt(
                endpoint.previous_secret_encrypted
            )
            endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])
            rewritten += 1
    return rewritten
