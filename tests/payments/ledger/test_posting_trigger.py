"""Migration 0023: PostgreSQL refuses, at commit, a ledger transaction whose
entries do not sum to zero per currency, whoever writes it."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Kind = LedgerAccount.Kind


@pytest.fixture(autouse=True)
def _latest_schema():
    """Migrated to the latest state: a migration test elsewhere may have left the test
    database at an older one (without this trigger)."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _raw_transaction(key, entries):
    """Insert a transaction and its entries with SQL, bypassing the posting service,
    in one database transaction; ``entries``: [(account, amount)]."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_ledgertransaction"
            " (kind, idempotency_key, reference_type, reference_id, description, created_at)"
            " VALUES ('adjustment', %s, 'test', '1', '', %s) RETURNING id",
            [key, now],
        )
        (txn_id,) = cursor.fetchone()
        for account, amount in entries:
            cursor.execute(
                "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
                " currency, transaction_kind, created_at)"
                " VALUES (%s, %s, %s, %s, 'adjustment', %s)",
                [txn_id, account.pk, amount, account.currency, now],
            )
    return txn_id


@pytest.fixture
def usd(seller):
    return platform_account(Kind.PROCESSOR, "USD"), seller_account(seller, Kind.PENDING, "USD")


@pytest.fixture
def eur(seller):
    return platform_account(Kind.PROCESSOR, "EUR"), seller_account(seller, Kind.PENDING, "EUR")


def test_an_unbalanced_raw_insert_fails_at_commit(usd):
    processor, pending = usd

    with pytest.raises(IntegrityError, match=r"\(raw-unbalanced\) does not balance in USD: .* 100"):
        _raw_transaction("raw-unbalanced", [(processor, 600), (pending, -500)])

    assert not LedgerTransaction.objects.filter(idempotency_key="raw-unbalanced").exists()
    assert not LedgerEntry.objects.exists()


def test_a_single_entry_is_unbalanced(usd):
    processor, _ = usd

    with pytest.raises(IntegrityError, match="does not balance"):
        _raw_transaction("raw-one-leg", [(processor, 600)])


def test_a_balanced_raw_insert_commits(usd):
    processor, pending = usd

    txn_id = _raw_transaction("raw-balanced", [(processor, 600), (pending, -450), (pending, -150)])

    assert LedgerEntry.objects.filter(transaction_id=txn_id).count() == 3


def test_ledger_post_still_works(usd):
    processor, pending = usd

    with transaction.atomic():
        for n in range(3):
            ledger_post(
                kind="adjustment",
                idempotency_key=f"posted-{n}",
                reference_type="test",
                reference_id=n,
                postings=[Posting(processor, 100 + n), Posting(pending, -100 - n)],
            )

    assert LedgerEntry.objects.count() == 6
    assert LedgerAccount.objects.with_balance().get(pk=processor.pk).balance == 303


def test_a_multi_currency_transaction_balanced_per_currency_passes(usd, eur):
    txn_id = _raw_transaction(
        "raw-two-currencies",
        [(usd[0], 500), (eur[0], 300), (usd[1], -500), (eur[1], -300)],
    )

    assert LedgerEntry.objects.filter(transaction_id=txn_id).count() == 4


def test_a_multi_currency_transaction_unbalanced_in_one_currency_fails(usd, eur):
    # Sums to zero overall, but not in each currency.
    with pytest.raises(IntegrityError, match="does not balance in EUR: its entries sum to -50"):
        _raw_transaction(
            "raw-one-currency-off",
            [(usd[0], 500), (eur[0], 300), (usd[1], -450), (eur[1], -350)],
        )


def test_an_unbalanced_transaction_among_balanced_ones_is_caught(usd):
    """The skip of already proved transactions does not skip a later, unbalanced one,
    nor an entry added to a transaction after it was proved."""
    processor, pending = usd
    now = timezone.now()

    def insert(cursor, txn_id, account, amount):
        cursor.execute(
            "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency, transaction_kind, created_at)"
            " VALUES (%s, %s, %s, 'USD', 'adjustment', %s)",
            [txn_id, account.pk, amount, now],
        )

    with (
        pytest.raises(IntegrityError, match=r"\(raw-late-leg\) does not balance"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        ids = []
        for key in ("raw-ok", "raw-late-leg"):
            cursor.execute(
                "INSERT INTO payments_ledgertransaction (kind, idempotency_key,"
                " reference_type, reference_id, description, created_at)"
                " VALUES ('adjustment', %s, 'test', '1', '', %s) RETURNING id",
                [key, now],
            )
            ids.append(cursor.fetchone()[0])
        insert(cursor, ids[0], processor, 100)
        insert(cursor, ids[0], pending, -100)
        insert(cursor, ids[1], processor, 100)
        insert(cursor, ids[1], pending, -100)
        # Fire the deferred checks now: both transactions are proved balanced ...
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        # ... then one gets a third, unbalancing leg.
        insert(cursor, ids[1], pending, -1)

    assert not LedgerTransaction.objects.exists()
