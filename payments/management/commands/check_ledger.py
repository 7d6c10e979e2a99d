from typing import Any

from django.core.management.base import BaseCommand, CommandError

from payments.checks import ledger_check


class Command(BaseCommand):
    help = "Prove the ledger consistent (see payments/checks/); exits non-zero on any problem."

    def handle(self, *args: Any, **options: Any) -> None:
        report = ledger_check()
        self.stdout.write(
            f"Checked {report.transactions} transactions, {report.entries} entries, "
            f"{report.accounts} accounts and {report.orders} paid orders."
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS("The ledger is consistent."))
            return
        for problem in report.problems:
            self.stderr.write(f"  {problem}")
        raise CommandError(f"{len(report.problems)} problem(s) found in the ledger.")
