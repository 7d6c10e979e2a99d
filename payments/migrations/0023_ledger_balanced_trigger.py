"""On PostgreSQL, refuse at commit a ledger transaction whose entries do not sum
to zero in each currency, in the database itself, whoever connects.

A constraint trigger, DEFERRABLE INITIALLY DEFERRED, fires once per inserted
entry when the database transaction commits (after all its entries are in) and
sums the entries of that entry's ledger transaction, using the index on
``transaction_id``. Entries of one ledger transaction are inserted together, so
their deferred events fire one after the other: the function remembers, for the
rest of the database transaction, the last ledger transaction it proved and the
highest entry id that proof covered, and skips the entries that proof already
covered. Checking is thus about one query per ledger transaction, not per entry.
(The same technique as django-hordak's ``check_leg`` trigger.)
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION payments_ledger_check_balanced() RETURNS trigger AS $$
DECLARE
    proved text := current_setting('payments.ledger_balanced_proved', true);
    covered bigint;
    bad_currency text;
    bad_total bigint;
    txn_key text;
BEGIN
    IF proved IS NOT NULL AND proved <> ''
       AND split_part(proved, ':', 1) = NEW.transaction_id::text
       AND NEW.id <= split_part(proved, ':', 2)::bigint THEN
        RETURN NULL;
    END IF;
    SELECT max(per_currency.last_id),
           min(per_currency.currency) FILTER (WHERE per_currency.total <> 0)
        INTO covered, bad_currency
        FROM (
            SELECT currency, sum(amount_minor) AS total, max(id) AS last_id
            FROM payments_ledgerentry
            WHERE transaction_id = NEW.transaction_id
            GROUP BY currency
        ) AS per_currency;
    IF bad_currency IS NOT NULL THEN
        SELECT t.idempotency_key, (
            SELECT sum(e.amount_minor) FROM payments_ledgerentry e
            WHERE e.transaction_id = t.id AND e.currency = bad_currency
        ) INTO txn_key, bad_total
            FROM payments_ledgertransaction t WHERE t.id = NEW.transaction_id;
        RAISE EXCEPTION 'ledger transaction % (%) does not balance in %: its entries sum to %',
                NEW.transaction_id, coalesce(txn_key, '?'), bad_currency, bad_total
            USING ERRCODE = 'check_violation',
                  HINT = 'Every ledger transaction''s entries sum to zero per currency.';
    END IF;
    PERFORM set_config(
        'payments.ledger_balanced_proved', NEW.transaction_id::text || ':' || covered::text, true
    );
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER payments_ledgerentry_balanced
    AFTER INSERT ON payments_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION payments_ledger_check_balanced();
"""

DROP = (
    "DROP TRIGGER IF EXISTS payments_ledgerentry_balanced ON payments_ledgerentry;"
    "DROP FUNCTION IF EXISTS payments_ledger_check_balanced();"
)


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("payments", "0022_webhook_events_sweep_schedule")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
