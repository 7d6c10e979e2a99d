"""The index for per-kind sums over a period (earnings charts, reserves, paid out):
(account, transaction_kind, created_at), with the amount in the index on
PostgreSQL for index-only scans. Built CONCURRENTLY there, so posting to the ledger
is never blocked while it builds (the migration is therefore not atomic)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, a plain CREATE INDEX elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("payments", "0020_payout_reserve")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="ledgerentry",
            index=models.Index(
                fields=["account", "transaction_kind", "created_at"],
                include=["amount_minor"],
                name="ledgerentry_acct_kind_time_idx",
            ),
        ),
    ]
