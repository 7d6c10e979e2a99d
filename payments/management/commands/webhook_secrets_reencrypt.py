from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payments.integrations.secrets import webhook_secrets_reencrypt
from payments.webhook_secrets import SecretUndecryptable


class Command(BaseCommand):
    help = (
        "Encrypt every webhook endpoint secret again with the first WEBHOOK_SECRET_KEYS key "
        "(key rotation: put the new key first, run this, then drop the old key)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = webhook_secrets_reencrypt()
        except SecretUndecryptable as exc:
            raise CommandError(f"{exc} Nothing was changed: add the missing key back.") from exc
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the secrets of {count} endpoint(s)."))
