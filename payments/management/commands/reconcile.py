from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from marketplace.kernel.currencies import format_amount
from payments.reporting.reconciliation import reconciliation_record


class Command(BaseCommand):
    help = (
        "Compare the ledger's cash at the processor with the processor's balance "
        "transactions; exits 1 when anything differs (for monitoring)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--hours", type=int, default=24, help="The period: the last N hours.")

    def handle(self, *args: Any, hours: int, **options: Any) -> None:
        until = timezone.now()
        report = reconciliation_record(
            since=until - timedelta(hours=hours), until=until, via="command"
        )
        for d in report.differences:
            ours = "—" if d.ours is None else format_amount(d.ours, d.currency)
            theirs = "—" if d.theirs is None else format_amount(d.theirs, d.currency)
            self.stdout.write(
                f"{d.movement} {d.processor_id}: ours {ours}, processor {theirs}. {d.note}"
            )
        self.stdout.write(
            f"{report.matched} matched, {len(report.differences)} differences, "
            f"{len(report.outside_scope)} outside the ledger's scope."
        )
        if report.differences:
            raise SystemExit(1)
