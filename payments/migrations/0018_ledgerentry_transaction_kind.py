"""Copy each ledger entry's transaction kind onto the entry (step 1 of 2).

The column is added empty, then filled from the transactions. On PostgreSQL the
ledger's append-only trigger refuses UPDATEs, so it is switched off for this one
statement, inside this migration's transaction, and on again before it commits.
The next migration makes the column required and indexes it.
"""

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

FILL = """
UPDATE payments_ledgerentry AS entry SET transaction_kind = txn.kind
FROM payments_ledgertransaction AS txn
WHERE entry.transaction_id = txn.id AND entry.transaction_kind IS NULL
"""
FILL_OTHER = """
UPDATE payments_ledgerentry SET transaction_kind = (
    SELECT kind FROM payments_ledgertransaction
    WHERE payments_ledgertransaction.id = payments_ledgerentry.transaction_id
) WHERE transaction_kind IS NULL
"""
TRIGGER = "payments_ledgerentry_append_only"


def fill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE payments_ledgerentry DISABLE TRIGGER {TRIGGER}")
        schema_editor.execute(FILL)
        schema_editor.execute(f"ALTER TABLE payments_ledgerentry ENABLE TRIGGER {TRIGGER}")
    else:
        schema_editor.execute(FILL_OTHER)


class Migration(migrations.Migration):
    dependencies = [("payments", "0017_payout_requires_approval")]

    operations = [
        migrations.AddField(
            model_name="ledgerentry",
            name="transaction_kind",
            field=models.CharField(choices=KINDS, max_length=20, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
