"""Invariants of payouts: what each pays for, freezes, and exactly-once sending
(checks 14 to 16)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, F, Q, Sum

from payments.models import (
    Clawback,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutPolicy,
)

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
# Payouts that keep their breakdown: failed and cancelled ones had it deleted.
WITH_BREAKDOWN = (
    Status.SCHEDULED,
    Status.AWAITING_APPROVAL,
    Status.HELD,
    Status.SENDING,
    Status.TRANSFERRED,
    Status.IN_TRANSIT,
    Status.PAID,
)
NOT_SENT = (Status.SCHEDULED, Status.AWAITING_APPROVAL, Status.HELD, Status.CANCELLED)
PAYOUT_KINDS = (
    TxnKind.PAYOUT_SENT,
    TxnKind.PAYOUT_FAILED,
    TxnKind.PAYOUT_TRANSFERRED,
    TxnKind.PAYOUT_PAID,
    TxnKind.PAYOUT_RETURNED,
)

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
    total (payments/payouts/breakdown.py): the rolling reserve keeps part back and a
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
    """16. Each payout's ledger transactions are its own, each once under its own key:
    ``payout:<id>:sent``, then ``:failed`` (a refused transfer) or ``:transferred``,
    then per bank payout attempt ``n`` ``:bank-<n>:paid`` and, if the bank returned
    it, ``:bank-<n>:returned`` (``:paid`` alone for a manual payout or one made
    before attempts); clawbacks from its transfer are ``clawback:<id>`` of that
    payout. Together they move exactly its amount through in transit and back out,
    and its status agrees with what the ledger says happened to it."""
    rows = (
        LedgerTransaction.objects.filter(
            Q(kind__in=PAYOUT_KINDS) | Q(idempotency_key__startswith="payout:")
        )
        .annotate(
            in_transit=Sum(
                "entries__amount_minor", filter=Q(entries__account__kind=Kind.IN_TRANSIT)
            )
        )
        .values_list("kind", "idempotency_key", "reference_id", "in_transit")
        .order_by("pk")
    )
    clawed = dict(
        Clawback.objects.filter(status=Clawback.Status.REVERSED)
        .values_list("payout_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    facts: dict[int, PayoutFacts] = defaultdict(PayoutFacts)
    for kind, key, reference, in_transit in rows.iterator():
        payout_id = int(reference) if str(reference).isdigit() else None
        payout = payouts.get(payout_id) if payout_id is not None else None
        if payout_id is None or payout is None:
            problems.append(
                f"Transaction {key} ({kind}) moves payout {reference}, which does not exist."
            )
            continue
        step = _payout_key_step(payout_id, kind, key)
        if step is None:
            problems.append(
                f"Transaction {key} ({kind}) of payout #{payout_id} is not one of its sent, "
                "failed, transferred, paid or returned transactions under its own key."
            )
            continue
        fact = facts[payout_id]
        if step in fact.seen:
            problems.append(f"Payout #{payout_id} has {step} twice: transactions {key}.")
        fact.seen.add(step)
        fact.in_transit += int(in_transit or 0)
        if kind == TxnKind.PAYOUT_SENT and -int(in_transit or 0) != payout[3]:
            problems.append(
                f"Transaction {key} moves {abs(int(in_transit or 0))} through in transit; "
                f"payout #{payout_id} is for {payout[3]} {payout[2]}."
            )
        if kind == TxnKind.PAYOUT_PAID:
            fact.paid += int(in_transit or 0)
        elif kind == TxnKind.PAYOUT_RETURNED:
            fact.paid += int(in_transit or 0)  # negative: what came back
    for payout_id, seller_id, _currency, amount, status, _ in payouts.values():
        fact = facts.get(payout_id, PayoutFacts())
        back = clawed.get(payout_id, 0)
        wrong = _payout_disagrees(status, fact, amount, back)
        if wrong:
            problems.append(
                f"Payout #{payout_id} of {amount} to seller #{seller_id} is {status} but {wrong}."
            )


class PayoutFacts:
    """What the ledger says happened to one payout."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.in_transit = 0  # net movement through the seller's in transit
        self.paid = 0  # net reached the bank (paid less returned)


def _payout_key_step(payout_id: int, kind: str, key: str) -> str | None:
    """The step a payout transaction's key names, if it is the right key for its kind."""
    prefix = f"payout:{payout_id}:"
    if not key.startswith(prefix):
        return None
    step = key[len(prefix) :]
    expected: dict[str, bool] = {
        TxnKind.PAYOUT_SENT: step == "sent",
        TxnKind.PAYOUT_FAILED: step == "failed",
        TxnKind.PAYOUT_TRANSFERRED: step == "transferred",
        TxnKind.PAYOUT_PAID: step == "paid" or _bank_step(step, "paid"),
        TxnKind.PAYOUT_RETURNED: step == "returned" or _bank_step(step, "returned"),
    }
    return step if expected.get(kind, False) else None


def _bank_step(step: str, suffix: str) -> bool:
    bank, _, rest = step.partition("-")
    attempt, _, end = rest.partition(":")
    return bank == "bank" and attempt.isdigit() and end == suffix


def _payout_disagrees(status: str, fact: PayoutFacts, amount: int, clawed_back: int) -> str | None:
    sent, failed = "sent" in fact.seen, "failed" in fact.seen
    transferred = "transferred" in fact.seen
    if status in NOT_SENT:
        return "was sent in the ledger" if fact.seen else None
    if not sent:
        return "has no payout sent transaction"
    if failed and transferred:
        return "both failed and was transferred"
    if status == Status.FAILED:
        if not failed:
            return "was sent but its failure was not posted (its money is stuck in transit)"
        return None if fact.in_transit == 0 else "its failure did not undo its sending"
    if failed:
        return "has a payout failed transaction"
    if status == Status.SENDING and (transferred or fact.paid):
        return "the ledger has it transferred"
    if status == Status.TRANSFERRED and not (transferred or "paid" in fact.seen):
        # (A payout paid before transfers were recorded moved the cash when paid.)
        return "has no transferred transaction"
    if status in (Status.SENDING, Status.TRANSFERRED, Status.IN_TRANSIT) and fact.paid:
        return f"{fact.paid} of it reached the bank in the ledger"
    if status == Status.PAID and fact.in_transit + clawed_back != 0:
        owed = -(fact.in_transit + clawed_back)
        return f"the ledger still has {owed} of it in transit"
    if status != Status.PAID and fact.in_transit != -amount:
        # Clawbacks take part of it back from the seller's processor account; only its
        # bank payouts move it out of in transit.
        return f"the ledger moved {amount + fact.in_transit} of it out of in transit"
    return None
