"""Platform balances in shards (docs/decisions/0004-platform-balance-shards.md).

The shard table; each platform account's running balance moved into its shard 0
(the platform's ``balance_minor`` is 0 from here on, which a constraint keeps);
and, on PostgreSQL, storage settings for the two tables whose rows every posting
updates: room on each page for HOT updates (the updated column is in no index) and
autovacuum that runs on a number of dead rows rather than a fraction of the table.
"""

import django.db.models.deletion
from django.db import migrations, models

# Rows updated on every posting: seller accounts (millions of rows, a few updated a
# posting: vacuum after 1,000 dead rows plus 1 %, not 20 % of the table) and the
# shards (a few hundred rows, two updated a posting: vacuum them every 500 dead rows).
STORAGE = {
    "payments_ledgeraccount": {
        "fillfactor": 80,
        "autovacuum_vacuum_scale_factor": 0.01,
        "autovacuum_vacuum_threshold": 1000,
        "autovacuum_analyze_scale_factor": 0.02,
    },
    "payments_ledgerbalanceshard": {
        "fillfactor": 50,
        "autovacuum_vacuum_scale_factor": 0.0,
        "autovacuum_vacuum_threshold": 500,
        "autovacuum_analyze_scale_factor": 0.1,
    },
}


def _storage(apps, schema_editor, *, reset: bool) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, options in STORAGE.items():
        if reset:
            schema_editor.execute(f"ALTER TABLE {table} RESET ({', '.join(options)})")
        else:
            pairs = ", ".join(f"{name} = {value}" for name, value in options.items())
            schema_editor.execute(f"ALTER TABLE {table} SET ({pairs})")


def storage_set(apps, schema_editor) -> None:
    _storage(apps, schema_editor, reset=False)


def storage_reset(apps, schema_editor) -> None:
    _storage(apps, schema_editor, reset=True)


def balances_to_shards(apps, schema_editor) -> None:
    """Each platform account's running balance becomes its shard 0."""
    LedgerAccount = apps.get_model("payments", "LedgerAccount")
    LedgerBalanceShard = apps.get_model("payments", "LedgerBalanceShard")
    platform = LedgerAccount.objects.filter(seller__isnull=True).exclude(balance_minor=0)
    LedgerBalanceShard.objects.bulk_create(
        LedgerBalanceShard(account_id=pk, shard=0, balance_minor=balance)
        for pk, balance in platform.values_list("pk", "balance_minor")
    )
    platform.update(balance_minor=0)
    if schema_editor.connection.vendor == "postgresql":
        # The shards' foreign key checks now, not at commit: a table with pending
        # trigger events cannot be altered, and the constraint below alters.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def shards_to_balances(apps, schema_editor) -> None:
    """Back: each platform account's running balance is the sum of its shards."""
    LedgerAccount = apps.get_model("payments", "LedgerAccount")
    LedgerBalanceShard = apps.get_model("payments", "LedgerBalanceShard")
    totals = (
        LedgerBalanceShard.objects.values("account_id")
        .annotate(total=models.Sum("balance_minor"))
        .values_list("account_id", "total")
    )
    for pk, total in totals:
        LedgerAccount.objects.filter(pk=pk).update(balance_minor=total)
    LedgerBalanceShard.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("payments", "0032_payout_run_chunks")]

    operations = [
        migrations.CreateModel(
            name="LedgerBalanceShard",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("shard", models.PositiveSmallIntegerField()),
                ("balance_minor", models.BigIntegerField(default=0)),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="shards",
                        to="payments.ledgeraccount",
                    ),
                ),
            ],
            options={"ordering": ["account_id", "shard"]},
        ),
        migrations.AddConstraint(
            model_name="ledgerbalanceshard",
            constraint=models.UniqueConstraint(
                fields=("account", "shard"), name="payments_ledgerbalanceshard_one_per_shard"
            ),
        ),
        migrations.AlterField(
            model_name="ledgeraccount",
            name="balance_minor",
            field=models.BigIntegerField(
                default=0, help_text="A seller account's running balance; 0 for the platform's."
            ),
        ),
        migrations.RunPython(storage_set, storage_reset),
        migrations.RunPython(balances_to_shards, shards_to_balances),
        migrations.AddConstraint(
            model_name="ledgeraccount",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("seller__isnull", False), ("balance_minor", 0), _connector="OR"
                ),
                name="payments_ledgeraccount_platform_balance_in_shards",
            ),
        ),
    ]
