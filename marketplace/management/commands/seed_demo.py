from django.core.management.base import BaseCommand

from accounts.models import User
from marketplace.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create demo users, sellers and products, with a year of orders, refunds and payouts "
        "on a database without them (safe to run again), and print the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already has users (used by `make run`).",
        )

    def handle(self, *args, if_empty: bool = False, **options):
        if if_empty and User.objects.exists():
            self.stdout.write("The database already has users; demo data not added.")
            return
        result = demo_seed()
        self.stdout.write(f"Demo data: {len(result.created)} rows created.")
        self.stdout.write("Logins (email / password):")
        for role, email, password in result.logins:
            self.stdout.write(f"  {role:<9} {email:<24} {password}")
