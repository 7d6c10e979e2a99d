"""Joins the three migrations of issue 19 made side by side (bank debits' schedule,
plan billing's schedule, service fee refunds); no operations."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0036_bank_debits_schedule"),
        ("payments", "0036_plans_billing_schedule"),
        ("payments", "0036_service_fee_refunds"),
    ]

    operations = []
