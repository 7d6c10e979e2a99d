"""Invariants of payouts: what each pays for, freezes, and exactly-once sending
(checks 14 to 16)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, F, Q, Sum

from payments.models import LedgerAccount, LedgerTransaction, Payout, PayoutEntry, PayoutPolicy

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
# Payouts that keep their breakdown: failed and cancelled ones had it deleted.
WITH_BREAKDOWN = (
    Status.SCHEDULED,
    Status.AWAITING_APPROVAL,
    Status.HELD,
    Status.SENDING,
    Status.IN_TRANSIT,
    Status.PAID,
)
NOT_SENT = (Status.SCHEDULED, Status.AWAITING_APPROVAL, Status.HELD, Status.CANCELLED)
SENT = (Status.SENDING, Status.IN_TRANSIT, Status.PAID)
SUFFIX = {TxnKind.PAYOUT_SENT: "sent", TxnKind.PAYOUT_PAID: "paid", TxnKind.PAYOUT_FAILED: "failed"}
# The sign of a payout transaction's in-transit entry, times the payout's amount.
IN_TRANSIT_SIGN = {TxnKind.PAYOUT_SENT: -1, TxnKind.PAYOUT_PAID: 1, TxnKind.PAYOUT_FAILED: 1}

PayoutRow = tuple[int, int, str, int, str, int]  # id, seller, currency, amount, status, reserve


def _payouts() -> list[PayoutRow]:
    return list(
        Payout.objects.order_by("pk").values_list(
            "pk", "seller_id", "currency", "amount_minor", "status", "reserve_minor"
        )
    )


def check_payouts(problems: list[str]) -> None:
    payouts = _payouts()
    if not payouts:
        if PayoutEntry.objects.exists():
            problems.append("Payout breakdown entries exist without payouts.")
        _check_payout_transactions(problems, {})
        return
    _check_breakdowns(problems, payouts)
    _check_frozen(problems, payouts)
    _check_payout_transactions(problems, {row[0]: row for row in payouts})


def _check_breakdowns(problems: list[str], payouts: list[PayoutRow]) -> None:
    """14. A payout pays for its breakdown: ledger entries of its seller's available
    account in its currency, each in one payout only (a one-to-one key); failed and
    cancelled payouts keep none. Its amount is not always exactly the breakdown's
    total (payments/payout_breakdown.py): the rolling reserve keeps part back and a
    later payout pays what earlier ones left. What holds, per seller and currency,
    in the order the payouts were made: the amounts of the payouts so far (those
    with a breakdown) are at most what their breakdowns pay for, less the reserve
    the latest one kept back, plus what failed or cancelled earlier payouts were
    for (a later payout may have paid a reserve that a failed one had kept)."""
    foreign = PayoutEntry.objects.exclude(
        entry__account__seller_id=F("payout__seller_id"),
        entry__account__kind=Kind.AVAILABLE,
        entry__account__currency=F("payout__currency"),
    ).values_list("payout_id", "entry_id", "entry__account_id")
    for payout_id, entry_id, account_id in foreign.iterator():
        problems.append(
            f"Payout #{payout_id} pays for entry #{entry_id}, which is on account "
            f"#{account_id}, not its seller's available account in its currency."
        )
    breakdowns = {
        payout_id: (-int(total or 0), count)
        for payout_id, total, count in PayoutEntry.objects.values_list("payout_id")
        .annotate(total=Sum("entry__amount_minor"), count=Count("pk"))
        .order_by()
    }
    paid_so_far: dict[tuple[int, str], int] = defaultdict(int)
    covered_so_far: dict[tuple[int, str], int] = defaultdict(int)
    dropped_so_far: dict[tuple[int, str], int] = defaultdict(int)
    for payout_id, seller_id, currency, amount, status, reserve in payouts:
        key = (seller_id, currency)
        covers, count = breakdowns.get(payout_id, (0, 0))
        if status not in WITH_BREAKDOWN:
            dropped_so_far[key] += amount
            if count:
                problems.append(
                    f"Payout #{payout_id} (seller #{seller_id}) is {status} but still pays "
                    f"for {count} ledger entries ({covers} {currency})."
                )
            continue
        paid_so_far[key] += amount
        covered_so_far[key] += covers
        limit = covered_so_far[key] - reserve + dropped_so_far[key]
        if paid_so_far[key] > limit:
            problems.append(
                f"Payout #{payout_id} (seller #{seller_id}, {status}) of {amount} {currency}: "
                f"its breakdown pays for {covers}; with the seller's earlier payouts, "
                f"{paid_so_far[key]} paid for breakdowns of {covered_so_far[key]} less the "
                f"reserve {reserve} kept back"
                + (
                    f", plus {dropped_so_far[key]} of failed or cancelled payouts"
                    if dropped_so_far[key]
                    else ""
                )
                + "."
            )


def _check_frozen(problems: list[str], payouts: list[PayoutRow]) -> None:
    """15. No payout is open to be sent (awaiting approval or scheduled; held is
    fine) for a seller whose payouts are frozen: by their own policy, or by the
    platform default when they have none."""
    waiting = [row for row in payouts if row[4] in (Status.AWAITING_APPROVAL, Status.SCHEDULED)]
    if not waiting:
        return
    policies: dict[int | None, tuple[bool, str]] = {
        seller_id: (frozen, reason)
        for seller_id, frozen, reason in PayoutPolicy.objects.values_list(
            "seller_id", "frozen", "frozen_reason"
        )
    }
    default = policies.get(None, (False, ""))
    for payout_id, seller_id, currency, amount, status, _ in waiting:
        frozen, reason = policies.get(seller_id, default)
        if frozen:
            problems.append(
                f"Payout #{payout_id} of {amount} {currency} to seller #{seller_id} is {status} "
                f"but the seller's payouts are frozen ({reason})."
            )


def _check_payout_transactions(problems: list[str], payouts: dict[int, PayoutRow]) -> None:
    """16. Each payout is sent (and paid, and failed) at most once, under its own key
    ``payout:<id>:sent|paid|failed``, for its amount, and only a payout that exists;
    its status agrees with what the ledger says happened to it."""
    rows = (
        LedgerTransaction.objects.filter(
            Q(kind__in=list(SUFFIX)) | Q(idempotency_key__startswith="payout:")
        )
        .annotate(
            in_transit=Sum(
                "entries__amount_minor", filter=Q(entries__account__kind=Kind.IN_TRANSIT)
            )
        )
        .values_list("pk", "kind", "idempotency_key", "reference_id", "in_transit")
        .order_by("pk")
    )
    seen: dict[int, dict[str, int]] = defaultdict(dict)
    for txn_id, kind, key, reference, in_transit in rows.iterator():
        payout_id = int(reference) if str(reference).isdigit() else None
        payout = payouts.get(payout_id) if payout_id is not None else None
        if payout_id is None or payout is None:
            problems.append(
                f"Transaction {key} ({kind}) moves payout {reference}, which does not exist."
            )
            continue
        if kind not in SUFFIX or key != f"payout:{payout_id}:{SUFFIX[kind]}":
            problems.append(
                f"Transaction {key} ({kind}) of payout #{payout_id} is not its sent, paid or "
                "failed transaction under its own key."
            )
            if kind not in SUFFIX:
                continue
        if kind in seen[payout_id]:
            problems.append(
                f"Payout #{payout_id} was {SUFFIX[kind]} twice: transactions "
                f"#{seen[payout_id][kind]} and #{txn_id}."
            )
        seen[payout_id][kind] = txn_id
        expected = IN_TRANSIT_SIGN[kind] * payout[3]
        if int(in_transit or 0) != expected:
            problems.append(
                f"Transaction {key} moves {abs(int(in_transit or 0))} through in transit; "
                f"payout #{payout_id} is for {payout[3]} {payout[2]}."
            )
    for payout_id, seller_id, _, amount, status, _ in payouts.values():
        done = seen.get(payout_id, {})
        sent, paid, failed = (kind in done for kind in SUFFIX)
        wrong = None
        if status in NOT_SENT and done:
            wrong = "was sent in the ledger"
        elif status in SENT and not sent:
            wrong = "has no payout sent transaction"
        elif status == Status.PAID and not paid:
            wrong = "has no payout paid transaction"
        elif status != Status.PAID and paid:
            wrong = "has a payout paid transaction"
        elif status == Status.FAILED and sent and not failed:
            wrong = "was sent but its failure was not posted (its money is stuck in transit)"
        elif status != Status.FAILED and failed:
            wrong = "has a payout failed transaction"
        if wrong:
            problems.append(
                f"Payout #{payout_id} of {amount} to seller #{seller_id} is {status} but {wrong}."
            )
