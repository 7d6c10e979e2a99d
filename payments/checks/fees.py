"""Invariants of the fees charged from sellers' balances (check 17).

Plan fees (``SellerPlanCharge``) and listing fees (``ListingCharge``) are rows of our
own with the ledger transaction that moved each of them; this check proves the two
agree, so a fee shown to a seller is exactly what their balance paid.
"""

from __future__ import annotations

from collections import defaultdict

from payments.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    ListingCharge,
    SellerPlanCharge,
)

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
FEE_TXN_KINDS = (TxnKind.PLAN_FEE, TxnKind.PLAN_FEE_CREDIT, TxnKind.LISTING_FEE)
# (charge model, its kind -> (ledger transaction kind, sign on the seller's available)),
# and the platform account that earns it.
CHARGES = (
    (
        SellerPlanCharge,
        {"charge": (TxnKind.PLAN_FEE, 1), "credit": (TxnKind.PLAN_FEE_CREDIT, -1)},
        Kind.PLAN_FEES,
    ),
    (
        ListingCharge,
        {"listed": (TxnKind.LISTING_FEE, 1), "renewed": (TxnKind.LISTING_FEE, 1)},
        Kind.LISTING_FEES,
    ),
)


def check_fee_charges(problems: list[str]) -> None:
    """17. Every plan charge or credit and every listing charge with an amount has one
    ledger transaction of its kind, whose entries are exactly the seller's available
    account moved by the amount (+ charged, - credited) and the platform's plan or
    listing fees account by its opposite, in the charge's currency; one with no amount
    has none; and no plan or listing fee transaction belongs to no charge. Three
    queries, whatever the number of charges."""
    entries: dict[int, dict[tuple[int | None, str, str], int]] = defaultdict(
        lambda: defaultdict(int)
    )
    kinds: dict[int, str] = {}
    for txn_id, txn_kind, seller_id, account_kind, currency, amount in LedgerEntry.objects.filter(
        transaction_kind__in=FEE_TXN_KINDS
    ).values_list(
        "transaction_id",
        "transaction_kind",
        "account__seller_id",
        "account__kind",
        "currency",
        "amount_minor",
    ):
        entries[txn_id][seller_id, account_kind, currency] += amount
        kinds[txn_id] = txn_kind
    claimed: set[int] = set()
    for model, by_kind, earned in CHARGES:
        name = model._meta.verbose_name
        rows = model.objects.values_list(
            "pk", "seller_id", "kind", "currency", "amount_minor", "ledger_transaction_id"
        )
        for pk, seller_id, kind, currency, amount, txn_id in rows.iterator():
            if txn_id is None:
                if amount:
                    problems.append(f"{name} #{pk}: {amount} {currency}, no ledger transaction.")
                continue
            claimed.add(txn_id)
            txn_kind, sign = by_kind[kind]
            expected = {
                (seller_id, Kind.AVAILABLE.value, currency): sign * amount,
                (None, earned.value, currency): -sign * amount,
            }
            found = {key: total for key, total in entries.get(txn_id, {}).items() if total}
            if kinds.get(txn_id) != txn_kind or found != expected:
                problems.append(
                    f"{name} #{pk}: {kind} {amount} {currency}, but its ledger transaction "
                    f"#{txn_id} ({kinds.get(txn_id)}) moves {dict(found)}."
                )
    for txn_id in sorted(set(entries) - claimed):
        problems.append(
            f"Ledger transaction #{txn_id} ({kinds[txn_id]}) belongs to no plan or listing charge."
        )
