"""Posting to the ledger: the one place that writes ledger rows.

Rules the posting service enforces:
- a transaction has at least two entries, none of them zero;
- its entries sum to zero in each currency, and each entry is in its account's currency;
- its idempotency key is unique: posting a key that exists returns the existing
  transaction and writes nothing (also when two posts race: the database's
  unique index decides, the loser returns the winner's transaction);
- the entries, the transaction and the accounts' running balances are written
  in one database transaction, the balances under row locks taken in primary
  key order (so concurrent posts cannot deadlock) and changed with ``F()``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

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


@transaction.atomic
def ledger_post(
    *,
    kind: str,
    idempotency_key: str,
    reference_type: str,
    reference_id: str | int,
    postings: Sequence[Posting],
    description: str = "",
) -> LedgerTransaction:
    """Post one balanced transaction once; see the module docstring for the rules."""
    existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return _same_event(existing, kind)
    _validate(postings)
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(
                kind=kind,
                idempotency_key=idempotency_key,
                reference_type=reference_type,
                reference_id=str(reference_id),
                description=description,
            )
    except IntegrityError:
        # The same event was posted concurrently and committed first.
        return _same_event(LedgerTransaction.objects.get(idempotency_key=idempotency_key), kind)

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
    # Lock every touched account in one ordered query, then move the balances.
    locked = LedgerAccount.objects.select_for_update().filter(pk__in=deltas).order_by("pk")
    for account_id in locked.values_list("pk", flat=True):
        if deltas[account_id]:
            LedgerAccount.objects.filter(pk=account_id).update(
                balance_minor=F("balance_minor") + deltas[account_id]
            )
    return txn


def _same_event(existing: LedgerTransaction, kind: str) -> LedgerTransaction:
    if existing.kind != kind:
        raise Conflict(
            f"Key {existing.idempotency_key!r} is taken by a {existing.kind} transaction."
        )
    return existing
