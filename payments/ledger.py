"""Posting to the ledger: the one place that writes ledger rows.

Rules the posting service enforces:
- a transaction has at least two entries, none of them zero;
- its entries sum to zero in each currency, and each entry is in its account's currency;
- its idempotency key is unique: posting a key that exists returns the existing
  transaction and writes nothing (also when two posts race: the database's
  unique index decides, the loser returns the winner's transaction);
- the entries, the transaction and the accounts' running balances are written
  in one database transaction, the balances under row locks taken in primary
  key order (so concurrent posts cannot deadlock) and changed by the database
  (``balance_minor + delta``, as ``F()`` would), never read and written back;
- a refusal writes nothing and leaves the caller's transaction usable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Seller
from marketplace.errors import Conflict, InvalidRequest
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction
from payments.money import is_whole_number

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


# The two statements of a posting that the ORM cannot say in one statement each.
# Table and column names are the models' (payments.models.ledger); both run on
# PostgreSQL and on SQLite (3.35 or later, for RETURNING).
_INSERT_ONCE = (
    "INSERT INTO payments_ledgertransaction"
    " (kind, idempotency_key, reference_type, reference_id, description, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
_MOVE_BALANCES = (
    "UPDATE payments_ledgeraccount SET balance_minor = balance_minor + CASE id {whens} END"
    " WHERE id IN ({ids})"
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

    A new key costs four statements in the caller's transaction (or in one of
    its own): the transaction row, its entries, the ordered row locks and one
    UPDATE of all the balances. The key is not looked up first: the INSERT of
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
        txn = _insert_once(
            kind=kind,
            idempotency_key=idempotency_key,
            reference_type=reference_type,
            reference_id=str(reference_id),
            description=description,
        )
        if txn is not None:
            _write(txn, kind, postings)
            return txn
        # Posted already, or concurrently by a transaction that committed first.
        existing = LedgerTransaction.objects.get(idempotency_key=idempotency_key)
    return _same_event(existing, kind)


def _insert_once(**values: str) -> LedgerTransaction | None:
    """The new transaction row, or None if its idempotency key is taken."""
    txn = LedgerTransaction(**values, created_at=timezone.now())
    created_at = LedgerTransaction._meta.get_field("created_at")
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ONCE,
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
    return txn


def _write(txn: LedgerTransaction, kind: str, postings: Sequence[Posting]) -> None:
    """The entries and the running balances of a newly inserted transaction."""
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            transaction=txn,
            account=posting.account,
            amount_minor=posting.amount_minor,
            currency=posting.account.currency,
            transaction_kind=kind,
            order_line_id=posting.order_line_id,
        )
        for posting in postings
    )
    deltas: dict[int, int] = defaultdict(int)
    for posting in postings:
        deltas[posting.account.pk] += posting.amount_minor
    # Lock every touched account in one query, in primary key order (an UPDATE
    # locks rows in whatever order its plan visits them, so it cannot do this),
    # then move all the balances in one UPDATE, computed by the database. FOR NO
    # KEY UPDATE, the lock that UPDATE itself takes: the entries just inserted hold
    # KEY SHARE locks on these rows (their foreign keys), which a plain FOR UPDATE
    # would wait on, so two posts to a busy account could deadlock.
    list(
        LedgerAccount.objects.select_for_update(no_key=True)
        .filter(pk__in=deltas)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    moved = sorted((pk, delta) for pk, delta in deltas.items() if delta)
    if moved:
        sql = _MOVE_BALANCES.format(
            whens=" ".join(["WHEN %s THEN %s"] * len(moved)), ids=", ".join(["%s"] * len(moved))
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [v for pair in moved for v in pair] + [pk for pk, _ in moved])


def _same_event(existing: LedgerTransaction, kind: str) -> LedgerTransaction:
    if existing.kind != kind:
        raise Conflict(
            f"Key {existing.idempotency_key!r} is taken by a {existing.kind} transaction."
        )
    return existing
