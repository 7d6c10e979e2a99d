"""Ledger entries' transaction kind (step 2 of 2): required, and indexed with the
account and time for per-kind sums over a period."""

from django.db import migrations, models

KINDS = [
    ("payment_captured", "Payment captured"),
    ("processor_fee", "Processor fee"),
    ("hold_released", "Hold released"),
    ("refund", "Refund"),
    ("payout_sent", "Payout sent"),
    ("payout_paid", "Payout paid"),
    ("payout_failed", "Payout failed"),
    ("dispute_opened", "Dispute opened"),
    ("dispute_won", "Dispute won"),
    ("dispute_lost", "Dispute lost"),
    ("adjustment", "Adjustment"),
]


class Migration(migrations.Migration):
    dependencies = [("payments", "0018_ledgerentry_transaction_kind")]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="transaction_kind",
            field=models.CharField(choices=KINDS, max_length=20),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                fields=["account", "transaction_kind", "created_at"],
                include=["amount_minor"],
                name="ledgerentry_acct_kind_time_idx",
            ),
        ),
    ]
