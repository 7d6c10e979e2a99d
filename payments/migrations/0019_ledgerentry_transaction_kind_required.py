"""Ledger entries' transaction kind (step 2 of 2): required from now on.

During a rolling deploy, web and worker processes of the previous release still
post entries without the column. On PostgreSQL a BEFORE INSERT trigger fills a
missing kind from the entry's transaction, so those inserts keep working (and any
other writer that forgets it); a NOT NULL check runs after BEFORE triggers. The
index that reads it is built in 0021, concurrently.
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

FILL_ON_INSERT = """
CREATE OR REPLACE FUNCTION payments_ledgerentry_fill_kind() RETURNS trigger AS $$
BEGIN
    IF NEW.transaction_kind IS NULL THEN
        SELECT kind INTO NEW.transaction_kind
        FROM payments_ledgertransaction WHERE id = NEW.transaction_id;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER payments_ledgerentry_fill_kind
    BEFORE INSERT ON payments_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION payments_ledgerentry_fill_kind();
"""
DROP_FILL_ON_INSERT = """
DROP TRIGGER IF EXISTS payments_ledgerentry_fill_kind ON payments_ledgerentry;
DROP FUNCTION IF EXISTS payments_ledgerentry_fill_kind();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FILL_ON_INSERT, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FILL_ON_INSERT, params=None)


class Migration(migrations.Migration):
    dependencies = [("payments", "0018_ledgerentry_transaction_kind")]

    operations = [
        migrations.RunPython(create_trigger, drop_trigger),
        migrations.AlterField(
            model_name="ledgerentry",
            name="transaction_kind",
            field=models.CharField(choices=KINDS, max_length=20),
        ),
    ]
