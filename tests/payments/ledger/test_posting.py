import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from marketplace.kernel.errors import Conflict, InvalidRequest
from payments.checks import ledger_check
from payments.ledger.balances import platform_balance, seller_balance
from payments.ledger.posting import (
    Posting,
    UnbalancedTransaction,
    ledger_post,
    platform_account,
    seller_account,
)
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction
from payments.models.ledger import AppendOnlyError

pytestmark = pytest.mark.django_db

Kind = LedgerAccount.Kind


def post(key="adjust:1", postings=None, kind="adjustment"):
    return ledger_post(
        kind=kind,
        idempotency_key=key,
        reference_type="test",
        reference_id=1,
        postings=postings,
    )


def balance(account):
    """The account's balance: a seller's running balance, the platform's shards."""
    return LedgerAccount.objects.with_balance().get(pk=account.pk).balance


@pytest.fixture
def accounts(seller):
    return (
        platform_account(Kind.PROCESSOR, "USD"),
        seller_account(seller, Kind.PENDING, "USD"),
        platform_account(Kind.COMMISSION, "USD"),
    )


def test_a_balanced_transaction_is_written_with_its_balances(accounts, seller):
    processor, pending, commission = accounts

    txn = post(
        postings=[Posting(processor, 1000), Posting(pending, -900), Posting(commission, -100)]
    )

    assert list(txn.entries.values_list("amount_minor", flat=True)) == [1000, -900, -100]
    assert seller_balance(seller=seller, currency="USD").pending == 900
    balance = platform_balance(currency="USD")
    assert (balance.cash_at_processor, balance.commission_earned) == (1000, 100)


def test_posting_the_same_key_again_writes_nothing(accounts):
    processor, pending, _ = accounts
    postings = [Posting(processor, 500), Posting(pending, -500)]

    first = post(postings=postings)
    second = post(postings=postings)

    assert first == second
    assert LedgerTransaction.objects.count() == 1
    assert LedgerEntry.objects.count() == 2
    assert balance(processor) == 500


def test_a_key_reused_for_another_kind_of_event_is_a_conflict(accounts):
    processor, pending, _ = accounts
    post(postings=[Posting(processor, 500), Posting(pending, -500)])

    with pytest.raises(Conflict):
        post(postings=[Posting(processor, 500), Posting(pending, -500)], kind="refund")


@pytest.mark.parametrize(
    "amounts",
    [[100, -99], [100], [100, 0, -100], [100.0, -100.0]],
    ids=["unbalanced", "single", "zero-entry", "floats"],
)
def test_invalid_transactions_are_refused_and_nothing_is_written(accounts, amounts):
    processor, pending, _ = accounts
    postings = [Posting(processor if i == 0 else pending, a) for i, a in enumerate(amounts)]

    with pytest.raises(UnbalancedTransaction):
        post(postings=postings)

    assert not LedgerTransaction.objects.exists()
    assert balance(processor) == 0


def test_entries_balance_per_currency(seller):
    usd, eur = platform_account(Kind.PROCESSOR, "USD"), platform_account(Kind.PROCESSOR, "EUR")

    with pytest.raises(UnbalancedTransaction):
        post(postings=[Posting(usd, 100), Posting(eur, -100)])


def test_a_platform_kind_is_not_a_seller_account(seller):
    with pytest.raises(InvalidRequest):
        seller_account(seller, Kind.COMMISSION, "USD")
    with pytest.raises(InvalidRequest):
        platform_account(Kind.PENDING, "USD")


def test_ledger_rows_cannot_be_changed_or_deleted_through_the_orm(accounts):
    processor, pending, _ = accounts
    txn = post(postings=[Posting(processor, 500), Posting(pending, -500)])
    entry = txn.entries.first()

    for action in (
        lambda: entry.save(),
        lambda: entry.delete(),
        lambda: txn.save(),
        lambda: txn.delete(),
        lambda: LedgerEntry.objects.filter(pk=entry.pk).update(amount_minor=1),
        lambda: LedgerEntry.objects.all().delete(),
        lambda: LedgerTransaction.objects.all().update(description="x"),
    ):
        with pytest.raises(AppendOnlyError):
            action()
    assert LedgerEntry.objects.get(pk=entry.pk).amount_minor == 500


@pytest.mark.postgres
def test_postgres_refuses_raw_updates_and_deletes_of_ledger_rows(accounts):
    processor, pending, _ = accounts
    txn = post(postings=[Posting(processor, 500), Posting(pending, -500)])

    for sql in (
        "UPDATE payments_ledgerentry SET amount_minor = 1",
        "DELETE FROM payments_ledgerentry",
        "UPDATE payments_ledgertransaction SET description = 'x'",
        "DELETE FROM payments_ledgertransaction",
    ):
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert txn.entries.count() == 2


def test_the_database_refuses_a_zero_entry(accounts):
    processor, _, _ = accounts
    txn = LedgerTransaction.objects.create(
        kind="adjustment", idempotency_key="raw", reference_type="t", reference_id="1"
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            transaction=txn,
            account=processor,
            amount_minor=0,
            currency="USD",
            transaction_kind="adjustment",
        )


def test_one_account_per_owner_kind_and_currency(seller):
    assert platform_account(Kind.PROCESSOR, "USD") == platform_account(Kind.PROCESSOR, "USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.create(kind=Kind.PROCESSOR, currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.create(seller=seller, kind=Kind.PROCESSOR, currency="USD")


def test_each_entry_carries_its_transactions_kind_and_the_check_says_if_not(accounts):
    from payments.checks import ledger_check

    processor, pending, _ = accounts
    txn = post(postings=[Posting(processor, 500), Posting(pending, -500)])
    assert set(txn.entries.values_list("transaction_kind", flat=True)) == {txn.kind}
    assert ledger_check().ok

    odd = LedgerTransaction.objects.create(
        kind="adjustment", idempotency_key="odd", reference_type="t", reference_id="1"
    )
    for account, amount in ((processor, 100), (pending, -100)):
        LedgerEntry.objects.create(
            transaction=odd,
            account=account,
            amount_minor=amount,
            currency="USD",
            transaction_kind="refund",
        )

    assert any(
        "says refund but its transaction is a adjustment" in p for p in ledger_check().problems
    )


@pytest.mark.django_db(transaction=True)
def test_the_migration_copies_the_kind_onto_existing_entries():
    """0018 fills the new column from the transactions (on PostgreSQL, past the
    append-only trigger, which is on again afterwards); 0019's insert trigger fills
    it for writers that do not know it yet; 0021 builds the index concurrently."""
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        ("payments", "0017_payout_requires_approval"),
        (
            "payments",
            "0021_ledgerentry_kind_index",
        ),
    )
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    account = old.get_model("payments", "LedgerAccount").objects.create(
        kind="processor", currency="USD"
    )
    txn = old.get_model("payments", "LedgerTransaction").objects.create(
        kind="payment_captured", idempotency_key="old", reference_type="t", reference_id="1"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
            " currency, created_at) VALUES (%s, %s, 100, 'USD', %s)",
            [txn.pk, account.pk, timezone.now()],
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([after])

    assert list(LedgerEntry.objects.values_list("transaction_kind", flat=True)) == [
        "payment_captured"
    ]
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            LedgerEntry.objects.filter(transaction_id=txn.pk)._raw_delete(connection.alias)
        # A previous release's process, posting without the column during a rolling
        # deploy: the insert trigger fills it in.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor,"
                " currency, created_at) VALUES (%s, %s, -100, 'USD', %s)",
                [txn.pk, account.pk, timezone.now()],
            )
        assert set(LedgerEntry.objects.values_list("transaction_kind", flat=True)) == {
            "payment_captured"
        }
    # Back to the latest schema for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_new_posting_is_five_statements(accounts, django_assert_num_queries):
    processor, pending, commission = accounts
    postings = [Posting(processor, 1000), Posting(pending, -900), Posting(commission, -100)]

    # The transaction row, its entries, the sellers' ordered row locks, one UPDATE of
    # their balances, one upsert of the platform accounts' shards.
    with django_assert_num_queries(5):
        post(postings=postings)


def test_a_posting_between_platform_accounts_only_locks_no_account_row(
    accounts, django_assert_num_queries
):
    processor, _, commission = accounts

    # The transaction row, its entries, one upsert of the two shards.
    with django_assert_num_queries(3):
        post(postings=[Posting(processor, 100), Posting(commission, -100)])


def test_an_account_twice_in_a_transaction_moves_by_the_sum_and_a_net_zero_not_at_all(
    accounts, seller
):
    processor, pending, commission = accounts

    txn = post(
        postings=[
            Posting(processor, 1000),
            Posting(pending, -600),
            Posting(pending, -300),
            Posting(commission, -150),
            Posting(commission, 50),
        ]
    )
    post(
        key="adjust:2",
        postings=[
            Posting(pending, 70),
            Posting(pending, -70),
            Posting(processor, 5),
            Posting(commission, -5),
        ],
    )

    assert txn.entries.count() == 5
    for account, expected in ((processor, 1005), (pending, -900), (commission, -105)):
        assert balance(account) == expected
    assert ledger_check().ok


def test_a_repeat_returns_the_posted_transaction_even_if_its_postings_no_longer_balance(accounts):
    processor, pending, _ = accounts
    first = post(postings=[Posting(processor, 500), Posting(pending, -500)])

    again = post(postings=[Posting(processor, 500), Posting(pending, 0)])

    assert again == first
    assert LedgerEntry.objects.count() == 2


def test_refusals_write_nothing_and_leave_the_callers_transaction_usable(accounts):
    processor, pending, _ = accounts

    with transaction.atomic():
        post(postings=[Posting(processor, 500), Posting(pending, -500)])
        with pytest.raises(Conflict):
            post(postings=[Posting(processor, 500), Posting(pending, -500)], kind="refund")
        with pytest.raises(UnbalancedTransaction):
            post(key="adjust:2", postings=[Posting(processor, 500), Posting(pending, -400)])
        replay = post(postings=[Posting(processor, 500), Posting(pending, -500)])
        post(key="adjust:3", postings=[Posting(processor, 100), Posting(pending, -100)])

    assert replay.idempotency_key == "adjust:1"
    assert sorted(LedgerTransaction.objects.values_list("idempotency_key", flat=True)) == [
        "adjust:1",
        "adjust:3",
    ]
    assert balance(processor) == 600
    assert ledger_check().ok


def test_the_transaction_returned_is_the_stored_row(accounts):
    processor, pending, _ = accounts

    txn = post(postings=[Posting(processor, 500), Posting(pending, -500)])

    stored = LedgerTransaction.objects.get()
    assert (txn.pk, txn.kind, txn.reference_type, txn.reference_id) == (
        stored.pk,
        stored.kind,
        stored.reference_type,
        stored.reference_id,
    )
    assert txn.created_at == stored.created_at
    assert not txn._state.adding


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_loser_of_a_race_for_a_key_gets_the_winners_transaction_and_carries_on(seller):
    from tests.concurrency import race

    processor = platform_account(Kind.PROCESSOR, "USD")
    pending = seller_account(seller, Kind.PENDING, "USD")
    commission = platform_account(Kind.COMMISSION, "USD")
    winner = {}

    def loser():
        with transaction.atomic():
            txn = post(key="race", postings=[Posting(processor, 500), Posting(pending, -500)])
            # Its own transaction is still usable: the key's conflict cost no savepoint.
            post(key="after", postings=[Posting(processor, 7), Posting(commission, -7)])
            return txn

    outcome = race(
        lambda: winner.setdefault(
            "txn", post(key="race", postings=[Posting(processor, 500), Posting(pending, -500)])
        ),
        loser,
    )

    assert outcome["value"].pk == winner["txn"].pk
    assert LedgerTransaction.objects.count() == 2
    assert balance(processor) == 507
    assert ledger_check().ok
