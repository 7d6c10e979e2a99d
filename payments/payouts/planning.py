"""Payout runs: which sellers are paid now, how much, and the payouts that record it.

A payout run (``payments.payouts.runs.run_payouts``) releases due holds, finds the sellers whose
schedule is due, and creates one ``Payout`` per seller and currency. What a
seller is paid is their available balance (already net of refunds and other
debts that came after earlier payouts), less what open payouts and pending
refunds already claim, less the policy's rolling reserve: a share of the
earnings released to available within the reserve window. The unique
(seller, currency, period) constraint makes a second run for the same period
a no-op, also when two runs race. Amounts under the policy's minimum roll
over; amounts above its approval threshold wait for an operator.

Each payout records its breakdown: the ledger entries of the seller's
available account that it pays for. Sending is in ``payments.payouts.sending``; what
operators do to payouts is in ``payments.payouts.controls``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Seller, User
from marketplace.kernel.money import percentage
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.ledger.locks import sellers_money_lock
from payments.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutPolicy,
    PayoutRun,
    Refund,
    RefundLine,
)
from payments.payouts.holds import holds_due, holds_due_amounts
from payments.payouts.policies import PolicyBook, frozen_policy, next_payout_date, payout_period

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
Status = Payout.Status
WRITES_PER_PAYOUT = 2  # a transfer, then a bank payout
PAYOUT_TXN_KINDS = (TxnKind.PAYOUT_SENT, TxnKind.PAYOUT_PAID, TxnKind.PAYOUT_FAILED)
SellerCurrency = tuple[int, str]


@dataclass
class PlannedPayout:
    seller: Seller
    currency: str
    amount_minor: int
    period: str
    status: str
    method: str = PayoutMethod.PROCESSOR
    reserve_minor: int = 0
    payout: Payout | None = None

    def payout_row(self, *, run: PayoutRun | None, created_by_id: int | None) -> Payout:
        """The unsaved ``Payout`` this plan makes (one shape for every run)."""
        return Payout(
            seller_id=self.seller.pk,
            currency=self.currency,
            amount_minor=self.amount_minor,
            period=self.period,
            status=self.status,
            method=self.method,
            requires_approval=self.status == Status.AWAITING_APPROVAL,
            reserve_minor=self.reserve_minor,
            run=run,
            created_by_id=created_by_id,
        )


@dataclass(frozen=True)
class SkippedSeller:
    seller: Seller
    currency: str
    reason: str

    def __str__(self) -> str:
        return f"{self.seller} ({self.currency}): {self.reason}"


@dataclass
class PayoutRunReport:
    planned: list[PlannedPayout] = field(default_factory=list)
    skipped: list[SkippedSeller] = field(default_factory=list)
    holds_released: int = 0
    run: PayoutRun | None = None

    @property
    def created(self) -> list[Payout]:
        return [plan.payout for plan in self.planned if plan.payout is not None]


def amounts_claimed(seller_ids: Iterable[int]) -> dict[SellerCurrency, int]:
    """What is already spoken for in each available balance: open payouts not yet
    sent, and the sellers' part of pending refunds on released sales."""
    ids = list(seller_ids)
    claimed: dict[SellerCurrency, int] = {}
    open_payouts = (
        Payout.objects.filter(seller_id__in=ids, status__in=Payout.OPEN)
        .values_list("seller_id", "currency")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    pending_refunds = (
        RefundLine.objects.filter(
            refund__status=Refund.Status.PENDING,
            order_line__seller_order__seller_id__in=ids,
            order_line__seller_order__released_at__isnull=False,
        )
        .values_list("order_line__seller_order__seller_id", "refund__currency")
        .annotate(total=Sum("seller_amount_minor"))
        .order_by()
    )
    # One statement: under the account lock in ``payout_create`` it runs once per payout.
    for seller_id, currency, total in open_payouts.union(pending_refunds, all=True):
        claimed[seller_id, currency] = claimed.get((seller_id, currency), 0) + int(total or 0)
    return claimed


def payable_now(
    *, seller_id: int, currency: str, reserve: int, excluding: Payout | None = None
) -> int:
    """What may be paid to a seller now: their available balance, less what open payouts
    (other than ``excluding``) and pending refunds of released sales claim, less
    ``reserve``. Read without locks: a caller that acts on it holds the seller's money
    lock (``payments.ledger.locks``)."""
    available = -int(
        LedgerAccount.objects.filter(seller_id=seller_id, kind=Kind.AVAILABLE, currency=currency)
        .values_list("balance_minor", flat=True)
        .first()
        or 0
    )
    claimed = amounts_claimed([seller_id]).get((seller_id, currency), 0)
    if excluding is not None and excluding.status in Payout.OPEN:
        claimed -= excluding.amount_minor  # its own claim
    return available - claimed - reserve


def payout_reserves(
    book: PolicyBook,
    seller_ids: Iterable[int],
    now: datetime,
    also_released: dict[SellerCurrency, int] | None = None,
) -> dict[SellerCurrency, int]:
    """Each seller's rolling reserve: their policy's share of the earnings released
    to available within its window (one query per distinct window), counting
    ``also_released`` (a dry run's due holds) as released now."""
    by_window: dict[int, list[int]] = {}
    for seller_id in seller_ids:
        policy = book.for_seller(seller_id)
        if policy.reserve_bps:
            by_window.setdefault(policy.reserve_days, []).append(seller_id)
    reserves: dict[SellerCurrency, int] = {}
    for days, ids in by_window.items():
        released = (
            LedgerEntry.objects.filter(
                account__kind=Kind.AVAILABLE,
                account__seller_id__in=ids,
                transaction_kind=TxnKind.HOLD_RELEASED,
                created_at__gte=now - timedelta(days=days),
            )
            .values_list("account__seller_id", "account__currency")
            .annotate(total=Sum("amount_minor"))
            .order_by()
        )
        totals: dict[SellerCurrency, int] = defaultdict(int)
        for seller_id, currency, total in released:
            totals[seller_id, currency] += -int(total or 0)
        for (seller_id, currency), amount in (also_released or {}).items():
            if seller_id in ids:
                totals[seller_id, currency] += amount
        for (seller_id, currency), amount in totals.items():
            reserves[seller_id, currency] = percentage(
                amount, book.for_seller(seller_id).reserve_bps
            )
    return reserves


def _cannot_be_paid(seller: Seller, policy: PayoutPolicy) -> str | None:
    if policy.frozen:
        return f"payouts frozen ({policy.frozen_reason})"
    if policy.method == PayoutMethod.MANUAL:
        return None if seller.has_bank_details else "bank details missing for a manual payout"
    if not (seller.can_receive_payouts and seller.payout_account_id):
        return "payout account not enabled"
    return None


def payouts_preview(*, now: datetime, seller_ids: list[int] | None) -> PayoutRunReport:
    """What a run would pay now, counting what releasing the due holds would add; read
    only, in one pass (a preview)."""
    report = PayoutRunReport()
    due = holds_due_amounts(now=now)
    report.holds_released = len(holds_due(now=now))
    has_money = Q(balance_minor__lt=0)
    for seller_id, currency in due:  # also accounts the due holds would fill
        has_money |= Q(seller_id=seller_id, currency=currency)
    accounts = LedgerAccount.objects.filter(has_money, kind=Kind.AVAILABLE, seller__isnull=False)
    if seller_ids is not None:
        accounts = accounts.filter(seller_id__in=seller_ids)
    available: dict[SellerCurrency, int] = defaultdict(int)
    for seller_id, currency, balance in accounts.values_list(
        "seller_id", "currency", "balance_minor"
    ):
        assert seller_id is not None
        available[seller_id, currency] += -balance
    for key, amount in due.items():
        if seller_ids is None or key[0] in seller_ids:
            available[key] += amount
    report.planned, report.skipped = payouts_plan(
        available=dict(available), now=now, manual=seller_ids is not None, due=due
    )
    return report


def payouts_plan(
    *,
    available: dict[SellerCurrency, int],
    now: datetime,
    manual: bool,
    due: dict[SellerCurrency, int] | None = None,
) -> tuple[list[PlannedPayout], list[SkippedSeller]]:
    """The payouts of these sellers' ``available`` balances (per seller and currency),
    by ``plan_payout``, with their claims, reserves and policies read in a few
    statements; ``manual`` pays them whatever their schedule. ``due``: a dry run's
    due holds, counted as released now. A caller that acts on the plans holds the
    sellers' money locks (``payments.ledger.locks``)."""
    seller_ids = {seller_id for seller_id, _ in available}
    if not seller_ids:
        return [], []
    sellers_by_id = Seller.objects.in_bulk(seller_ids)
    book = PolicyBook.load(seller_ids)
    claimed = amounts_claimed(seller_ids)
    reserves = payout_reserves(book, seller_ids, now, also_released=due)
    manual_period = f"manual-{timezone.localdate(now).isoformat()}"
    planned: list[PlannedPayout] = []
    skipped: list[SkippedSeller] = []
    for seller_id, currency in sorted(available):
        seller = sellers_by_id[seller_id]
        policy = book.for_seller(seller_id)
        period = manual_period if manual else payout_period(policy, now)
        if period is None:
            continue
        decision = plan_payout(
            seller=seller,
            currency=currency,
            policy=policy,
            period=period,
            available=available[seller_id, currency],
            claimed=claimed.get((seller_id, currency), 0),
            reserve=reserves.get((seller_id, currency), 0),
        )
        if isinstance(decision, SkippedSeller):
            skipped.append(decision)
        else:
            planned.append(decision)
    return planned, skipped


def plan_payout(
    *,
    seller: Seller,
    currency: str,
    policy: PayoutPolicy,
    period: str,
    available: int,
    claimed: int,
    reserve: int,
) -> PlannedPayout | SkippedSeller:
    """The payout a seller is due, or why none: the one rule for runs and retries."""
    reason = _cannot_be_paid(seller, policy)
    amount = available - claimed - reserve
    minimum = int(policy.minimums.get(currency, 0))
    if reason is None and amount <= 0:
        reason = "nothing to pay beyond open payouts and the reserve"
    elif reason is None and amount < minimum:
        reason = f"{amount} is under the minimum of {minimum}; it rolls over"
    if reason is not None:
        return SkippedSeller(seller, currency, reason)
    threshold = policy.approval_thresholds.get(currency)
    status = (
        Status.AWAITING_APPROVAL
        if threshold is not None and amount > int(threshold)
        else Status.SCHEDULED
    )
    return PlannedPayout(seller, currency, amount, period, status, policy.method, reserve)


def send_delay(slot: int) -> float:
    """Seconds to wait before the ``slot``-th send of a run, so that a run's processor
    writes (two a payout: its transfer and its bank payout) stay under
    ``PAYMENTS_PROCESSOR_WRITES_PER_SECOND`` whatever the number of workers."""
    writes = int(settings.PAYMENTS_PROCESSOR_WRITES_PER_SECOND)
    per_second = writes // WRITES_PER_PAYOUT  # whole payouts: no second holds a third write
    if per_second >= 1:
        return slot / per_second
    return slot * WRITES_PER_PAYOUT / writes


def payout_create(
    plan: PlannedPayout,
    *,
    account: LedgerAccount,
    run: PayoutRun | None,
    by: User | None,
    send_after: float = 0.0,
) -> Payout | None:
    """One payout for the period, with its breakdown; None if another run made it first.

    A scheduled payout through the processor is sent by its own task once
    this commits; a manual one waits for an operator's bank transfer.
    """
    try:
        with transaction.atomic():
            # Another run (another period, a retry), a refund or a dispute may have
            # changed the balance since the plan was made: what fits is read again
            # under the seller's money lock (payments.ledger.locks).
            sellers_money_lock([plan.seller.pk])
            if frozen_policy(plan.seller.pk) is not None:
                return None  # frozen since the plan was made
            fits = payable_now(
                seller_id=plan.seller.pk, currency=plan.currency, reserve=plan.reserve_minor
            )
            if fits <= 0:
                return None
            plan.amount_minor = min(plan.amount_minor, fits)
            payout = plan.payout_row(run=run, created_by_id=by.pk if by else None)
            payout.save(force_insert=True)
            entries = LedgerEntry.objects.filter(account=account, payout_item__isnull=True).exclude(
                transaction_kind__in=PAYOUT_TXN_KINDS
            )
            PayoutEntry.objects.bulk_create(
                PayoutEntry(payout=payout, entry_id=entry_id)
                for entry_id in entries.values_list("pk", flat=True)
            )
    except IntegrityError:
        return None
    payout_enqueue(payout, send_after=send_after)
    return payout


def payout_enqueue(payout: Payout, *, send_after: float = 0.0) -> None:
    """Send a scheduled processor payout by its own task once the transaction commits
    (``send_after`` seconds later)."""
    if payout.status == Status.SCHEDULED and payout.method == PayoutMethod.PROCESSOR:
        enqueue_on_commit(
            "payments.tasks.payout_send_task", payout.pk, countdown=send_after or None
        )


@dataclass
class NextPayout:
    date: datetime | None
    estimate_minor: int
    currency: str
    reserve_minor: int = 0


def next_payout_for(*, seller: Seller, currency: str, now: datetime | None = None) -> NextPayout:
    """When the seller's schedule next pays, and about how much: what would be paid now."""
    now = now or timezone.now()
    book = PolicyBook.load([seller.pk])
    reserve = payout_reserves(book, [seller.pk], now).get((seller.pk, currency), 0)
    estimate = max(payable_now(seller_id=seller.pk, currency=currency, reserve=reserve), 0)
    return NextPayout(
        next_payout_date(book.for_seller(seller.pk), now), estimate, currency, reserve
    )
