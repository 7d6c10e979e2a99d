from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Seller
from marketplace.kernel.currencies import format_amount
from payments.models import PayoutRun
from payments.payouts.runs import run_payouts


class Command(BaseCommand):
    help = "Create the payouts that are due now (each is then sent by a Celery task)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, write nothing.")
        parser.add_argument(
            "--seller", action="append", default=[], help="Pay only this seller (slug), now."
        )

    def handle(self, *args: Any, dry_run: bool, seller: list[str], **options: Any) -> None:
        sellers = None
        if seller:
            sellers = list(Seller.objects.filter(slug__in=seller))
            missing = set(seller) - {s.slug for s in sellers}
            if missing:
                raise CommandError(f"No seller with slug {', '.join(sorted(missing))}.")
        report = run_payouts(sellers=sellers, dry_run=dry_run, trigger=PayoutRun.Trigger.COMMAND)
        verb = "Would pay" if dry_run else "Paying"
        for plan in report.planned:
            note = "" if plan.payout or dry_run else " (already created by another run)"
            self.stdout.write(
                f"{verb} {plan.seller.display_name} "
                f"{format_amount(plan.amount_minor, plan.currency)} [{plan.status}]{note}"
            )
        for skipped in report.skipped:
            self.stdout.write(f"Skipped {skipped}")
        run = f"{report.run}: " if report.run else "Dry run: "
        self.stdout.write(
            f"{run}{len(report.planned)} payout(s); {report.holds_released} hold(s) released."
        )
