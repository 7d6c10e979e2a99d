"""The seller dashboard's reads (payments/dashboard.py): an index for the seller orders
still in their hold.

The dashboard's estimate of the next payout reads a seller's paid seller orders not
released yet. Without this index that read walks every seller order the seller ever
had (the seller index) to find the few of the last days; with it, it reads only those.
The hold release job (``holds_due``: ``released_at IS NULL`` across sellers) reads the
same rows. A partial index: a seller order leaves it once, when its hold is released,
so it stays as small as what is pending.

The ledger needs no new index: every entry the dashboard reads comes from
``ledgerentry_acct_kind_time_idx`` (account, kind, time, with the amount), index only.

The table is ``marketplace_sellerorder`` (the marketplace app's), indexed here because
only the dashboard's reads need it; the index is not in the model's state, so
``makemigrations`` does not see it. On PostgreSQL it is built ``CONCURRENTLY`` (hence
a non-atomic migration): the table is large and written by every checkout, and a
plain ``CREATE INDEX`` would block those writes for the whole build. A build that
fails leaves an invalid index: drop it and migrate again.
"""

from django.db import migrations

INDEX = "marketplace_sellerorder_held_idx"


def index_create(apps, schema_editor) -> None:
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX {concurrently}IF NOT EXISTS {INDEX} "
        "ON marketplace_sellerorder (seller_id) WHERE released_at IS NULL"
    )


def index_drop(apps, schema_editor) -> None:
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("payments", "0033_ledger_balance_shards"),
        ("marketplace", "0002_orders"),
    ]

    operations = [
        migrations.RunPython(index_create, index_drop, elidable=False),
    ]
