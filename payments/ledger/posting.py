"""Posting to the ledger: the one place that writes ledger rows.

Rules the posting service enforces:
- a transaction has at least two entries, none of them zero;
- its entries sum to zero in each currency, and each entry is in its account's currency;
- its idempotency key is unique: posting a key that exists returns the existing
  transaction and writes nothing (also when two posts race: the database's
  unique index decides, the loser returns the winner's transaction);
- the entries, the transaction and the accounts' running balances are written
  in one database transaction, the balances changed by the database
  (``balance_minor + delta``, as ``F()`` would), never read and written back;
- a seller account's running balance is its own row, changed under that row's
  lock; a platform account's is the sum of its balance shards
  (``LedgerBalanceShard``, docs/decisions/0004), and a posting adds to ONE of
  them, chosen by the idempotency key of its database transaction's first
  posting (``_transaction_shard``), so concurrent postings, which all touch the
  platform, do not queue on one row;
- row locks are taken in one order: the seller accounts in primary key order,
  then the shards in (account, shard) order; see ``_write`` for why this cannot
  deadlock;
- a refusal writes nothing and leaves the caller's transaction usable.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.errors import Conflict, InvalidRequest
from marketplace.kernel.money import is_whole_number
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

Kind = LedgerAccount.Kind


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a transaction before it is written: a signed amount on an account."""

    account: LedgerAccount
    amount_minor: int
    order_line_id: int | None = None


class UnbalancedTransaction(InvalidRequest):
    code = "unbalanced"


def ledger_account(*, kind: str, currency: str, seller: Seller | None = None) -> LedgerAccount:
    """The account of a seller (or of the platform, when ``seller`` is None); made on first use."""
    if kind not in Kind.values:
        raise InvalidRequest(f"{kind!r} is not a kind of ledger account.")
    if (seller is None) != (kind in LedgerAccount.PLATFORM_KINDS):
        raise InvalidRequest(
            f"A {kind} account belongs to {'the platform' if seller is None else 'a seller'}."
        )
    account, _ = LedgerAccount.objects.get_or_create(seller=seller, kind=kind, currency=currency)
    return account


def platform_account(kind: str, currency: str) -> LedgerAccount:
    return ledger_account(kind=kind, currency=currency)


def seller_account(seller: Seller, kind: str, currency: str) -> LedgerAccount:
    return ledger_account(kind=kind, currency=currency, seller=seller)


def balance_shard(idempotency_key: str, shards: int) -> int:
    """The shard (0 to ``shards`` - 1) a posting with this key adds to on every
    platform account it touches: CRC-32 of the key, so the same key picks the same
    shard in every process and release (Python's ``hash()`` of a string changes
    from process to process)."""
    return zlib.crc32(idempotency_key.encode()) % shards


def _validate(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise UnbalancedTransaction("A ledger transaction needs at least two entries.")
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        amount = posting.amount_minor
        if not is_whole_number(amount) or amount == 0:
            raise UnbalancedTransaction(f"Entry amounts are non-zero integers, not {amount!r}.")
        totals[posting.account.currency] += amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"Entries do not sum to zero: {unbalanced}.")


# The statements of a posting, in SQL: the ORM cannot say some of them in one
# statement each, and building the others costs more Python than the database
# takes to run them (the posting is the hottest write path). Table and column names
# are the models' (payments.models.ledger); they run on PostgreSQL and on SQLite
# (3.35 or later, for RETURNING; 3.24 for upserts).
_INSERT_ONCE = (
    "INSERT INTO payments_ledgertransaction"
    " (kind, idempotency_key, reference_type, reference_id, description, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
# PostgreSQL also names the database transaction (its id), for ``_transaction_shard``.
_TRANSACTION_ID = ", txid_current()"
_INSERT_ENTRIES = (
    "INSERT INTO payments_ledgerentry (transaction_id, account_id, amount_minor, currency,"
    " transaction_kind, order_line_id, created_at) VALUES {rows}"
)
# FOR NO KEY UPDATE where the database has row locks (PostgreSQL); SQLite locks the
# whole database for the write anyway.
_LOCK_ACCOUNTS = "SELECT id FROM payments_ledgeraccount WHERE id IN ({ids}) ORDER BY id{lock}"
_MOVE_BALANCES = (
    "UPDATE payments_ledgeraccount SET balance_minor = balance_minor + CASE id {whens} END"
    " WHERE id IN ({ids})"
)
# Rows are inserted (and so locked) in the order of VALUES: (account, shard) order.
_ADD_TO_SHARDS = (
    "INSERT INTO payments_ledgerbalanceshard (account_id, shard, balance_minor)"
    " VALUES {rows} ON CONFLICT (account_id, shard) DO UPDATE"
    " SET balance_minor = payments_ledgerbalanceshard.balance_minor + excluded.balance_minor"
)


def ledger_post(
    *,
    kind: str,
    idempotency_key: str,
    reference_type: str,
    reference_id: str | int,
    postings: Sequence[Posting],
    description: str = "",
) -> LedgerTransaction:
    """Post one balanced transaction once; see the module docstring for the rules.

    A new key costs at most five statements in the caller's transaction (or in
    one of its own): the transaction row, its entries, the ordered row locks of
    the seller accounts and one UPDATE of their balances, and one upsert of the
    platform accounts' shards. The key is not looked up first: the INSERT of
    the transaction row skips itself (``ON CONFLICT DO NOTHING``) when the key
    is taken, also by a concurrent post that commits while it waits on the
    unique index, and the existing transaction is then read and returned. So no
    savepoint is needed, and refusals (unbalanced, key taken by another kind)
    are raised before anything is written, leaving the caller's transaction
    usable. A database error in the middle (which the rules above leave no
    room for) fails the caller's whole transaction, as PostgreSQL would anyway.
    """
    try:
        _validate(postings)
    except UnbalancedTransaction:
        # A repeat of a posted event answers with that event even if its postings,
        # recomputed from the current state, would no longer be valid.
        existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return _same_event(existing, kind)
    with transaction.atomic(savepoint=False):
        inserted = _insert_once(
            kind=kind,
            idempotency_key=idempotency_key,
            reference_type=reference_type,
            reference_id=str(reference_id),
            description=description,
        )
        if inserted is not None:
            txn, database_transaction = inserted
            _write(txn, kind, postings, _transaction_shard(idempotency_key, database_transaction))
            return txn
        # Posted already, or concurrently by a transaction that committed first.
        existing = LedgerTransaction.objects.get(idempotency_key=idempotency_key)
    return _same_event(existing, kind)


def _transaction_shard(idempotency_key: str, database_transaction: int | None) -> int:
    """The shard of a posting: chosen by the key of the first posting of its database
    transaction, and the same for every later posting of that transaction (a capture
    and its fee, posted together). So a transaction that posts twice holds platform
    shards of one number only, as it held the one platform row before there were
    shards: two such transactions touch different shards or queue on the same ones,
    never each holding a shard the other waits for (keys chosen per posting could
    deadlock them). SQLite (one writer at a time, no transaction id) chooses by key."""
    shards = int(settings.LEDGER_BALANCE_SHARDS)
    if database_transaction is None:
        return balance_shard(idempotency_key, shards)
    kept: tuple[int, int] | None = getattr(connection, "_ledger_shard", None)
    if kept is not None and kept[0] == database_transaction:
        return kept[1]
    shard = balance_shard(idempotency_key, shards)
    connection._ledger_shard = (database_transaction, shard)  # type: ignore[attr-defined]
    return shard


def _insert_once(**values: str) -> tuple[LedgerTransaction, int | None] | None:
    """The new transaction row and the database transaction's id (PostgreSQL; None on
    SQLite), or None if its idempotency key is taken."""
    txn = LedgerTransaction(**values, created_at=timezone.now())
    created_at = LedgerTransaction._meta.get_field("created_at")
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ONCE + (_TRANSACTION_ID if postgres else ""),
            [
                txn.kind,
                txn.idempotency_key,
                txn.reference_type,
                txn.reference_id,
                txn.description,
                created_at.get_db_prep_value(txn.created_at, connection),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    txn.pk = row[0]
    txn._state.adding = False
    txn._state.db = connection.alias
    return txn, (int(row[1]) if postgres else None)


def _write(txn: LedgerTransaction, kind: str, postings: Sequence[Posting], shard: int) -> None:
    """The entries and the running balances of a newly inserted transaction.

    Locks, in one order for every posting: first the seller accounts' rows in
    primary key order, then the platform accounts' shard rows in (account,
    shard) order. Every posting that waits for a row holds only rows that come
    before it in that order, so no two postings can each wait for a row the
    other holds: no deadlock. (The entries' foreign keys take KEY SHARE locks on
    the account rows, platform ones included; those conflict with no lock a
    posting takes, and nothing else locks a platform account's row for update.)
    A caller that posts twice in one database transaction takes a second round
    of locks after the first, on the same shard number (``_transaction_shard``),
    as it took the one platform row twice before there were shards.
    """
    sellers: dict[int, int] = defaultdict(int)
    platform: dict[int, int] = defaultdict(int)
    for posting in postings:
        deltas = platform if posting.account.seller_id is None else sellers
        deltas[posting.account.pk] += posting.amount_minor
    created_at = LedgerEntry._meta.get_field("created_at").get_db_prep_value(
        txn.created_at, connection
    )
    entries = [
        (
            txn.pk,
            posting.account.pk,
            posting.amount_minor,
            posting.account.currency,
            kind,
            posting.order_line_id,
            created_at,
        )
        for posting in postings
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ENTRIES.format(rows=", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(entries))),
            [v for row in entries for v in row],
        )
        if sellers:
            # Lock every touched seller account in one query, in primary key order (an
            # UPDATE locks rows in whatever order its plan visits them, so it cannot do
            # this), then move the balances in one UPDATE, computed by the database.
            # FOR NO KEY UPDATE, the lock that UPDATE itself takes: the entries just
            # inserted hold KEY SHARE locks on these rows (their foreign keys), which a
            # plain FOR UPDATE would wait on, so two posts to a busy account could
            # deadlock.
            ids = sorted(sellers)
            lock = " FOR NO KEY UPDATE" if connection.features.has_select_for_update else ""
            cursor.execute(_LOCK_ACCOUNTS.format(ids=", ".join(["%s"] * len(ids)), lock=lock), ids)
            cursor.fetchall()
        moved = sorted((pk, delta) for pk, delta in sellers.items() if delta)
        if moved:
            sql = _MOVE_BALANCES.format(
                whens=" ".join(["WHEN %s THEN %s"] * len(moved)),
                ids=", ".join(["%s"] * len(moved)),
            )
            cursor.execute(sql, [v for pair in moved for v in pair] + [pk for pk, _ in moved])
        added = sorted((pk, shard, delta) for pk, delta in platform.items() if delta)
        if added:
            sql = _ADD_TO_SHARDS.format(rows=", ".join(["(%s, %s, %s)"] * len(added)))
            cursor.execute(sql, [v for row in added for v in row])


def _same_event(existing: LedgerTransaction, kind: str) -> LedgerTransaction:
    if existing.kind != kind:
        raise Conflict(
            f"Key {existing.idempotency_key!r} is taken by a {existing.kind} transaction."
        )
    return existing
