from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from payments.collection.webhooks import webhooks_backfill


class Command(BaseCommand):
    help = (
        "Fetch the processor's events of the last days and process those never received "
        "(Stripe keeps them for 30 days)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=3, help="How far back to look (1-30).")

    def handle(self, *args: Any, days: int, **options: Any) -> None:
        days = max(1, min(days, 30))
        added = webhooks_backfill(since=timezone.now() - timedelta(days=days))
        self.stdout.write(f"{added} missing event(s) stored and queued.")
