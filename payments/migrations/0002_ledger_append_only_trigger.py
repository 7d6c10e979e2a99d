"""On PostgreSQL, refuse UPDATE and DELETE on ledger transactions and entries
in the database itself, whoever connects. TRUNCATE (used by test suites to
empty tables) is a separate event and is not blocked."""

from django.db import migrations

TABLES = ("payments_ledgertransaction", "payments_ledgerentry")

CREATE = """
CREATE OR REPLACE FUNCTION payments_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
""" + "".join(
    f"""
CREATE TRIGGER {table}_append_only
    BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_append_only();
"""
    for table in TABLES
)

DROP = "".join(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};" for table in TABLES) + (
    "DROP FUNCTION IF EXISTS payments_ledger_append_only();"
)


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
