"""Hold release: a seller's earnings move from pending to available.

A seller order's share is released once, the hold days of the seller's payout
policy after payment or, where the policy says so, once delivered. What moves is what
the ledger says is still pending for that seller order (its share less any
refund already posted), line by line, in one transaction keyed
``hold:<seller order id>``. Refunds after the release come out of available.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import OperationalError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from marketplace.kernel.errors import InvalidState
from marketplace.models import SellerOrder
from payments.ledger.locks import order_lock, sellers_money_lock
from payments.ledger.posting import Posting, ledger_post, seller_account
from payments.ledger.retries import retry_on_conflict
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction
from payments.payouts.policies import PolicyBook, release_is_due

logger = logging.getLogger(__name__)

Kind = LedgerAccount.Kind
RELEASABLE = (
    SellerOrder.Status.PAID,
    SellerOrder.Status.SHIPPED,
    SellerOrder.Status.DELIVERED,
    SellerOrder.Status.PARTIALLY_REFUNDED,
    SellerOrder.Status.REFUNDED,
    SellerOrder.Status.CANCELLED,
)


@transaction.atomic
def seller_order_hold_release(
    *, seller_order: SellerOrder, now: datetime | None = None
) -> LedgerTransaction | None:
    """Move what is still pending for a paid seller order to available. Safe to repeat."""
    # The lock order (payments.ledger.locks): the order, its seller order, the seller's
    # money lock (the release changes what the seller may be paid).
    order_id = SellerOrder.objects.values_list("order_id", flat=True).get(pk=seller_order.pk)
    order_lock(order_id)
    seller_order = (
        SellerOrder.objects.select_for_update(no_key=True, of=("self",))
        .select_related("order", "seller")
        .get(pk=seller_order.pk)
    )
    sellers_money_lock([seller_order.seller_id])
    key = f"hold:{seller_order.pk}"
    if seller_order.released_at is not None:
        existing: LedgerTransaction | None = LedgerTransaction.objects.filter(
            idempotency_key=key
        ).first()
        return existing
    if seller_order.order.paid_at is None or seller_order.status not in RELEASABLE:
        raise InvalidState("Only the earnings of a paid order can be released.")
    currency = seller_order.order.currency
    pending = seller_account(seller_order.seller, Kind.PENDING, currency)
    available = seller_account(seller_order.seller, Kind.AVAILABLE, currency)
    still_pending = (
        LedgerEntry.objects.filter(account=pending, order_line__seller_order=seller_order)
        .values_list("order_line_id")
        .annotate(total=Sum("amount_minor"))
        .order_by("order_line_id")
    )
    postings: list[Posting] = []
    for line_id, total in still_pending:
        if total:
            postings += [Posting(pending, -total, line_id), Posting(available, total, line_id)]
    txn = None
    if postings:
        txn = ledger_post(
            kind=LedgerTransaction.Kind.HOLD_RELEASED,
            idempotency_key=key,
            reference_type="seller_order",
            reference_id=seller_order.pk,
            postings=postings,
            description=f"Earnings of order #{seller_order.order_id} released",
        )
    SellerOrder.objects.filter(pk=seller_order.pk).update(released_at=now or timezone.now())
    return txn


def holds_release_due(*, now: datetime | None = None) -> int:
    """Release every seller order whose hold, by its seller's policy, is over; returns
    how many were released."""
    now = now or timezone.now()
    released = 0
    for pk in holds_due(now=now):
        try:
            retry_on_conflict(partial(_release_one, pk, now))
        except (InvalidState, OperationalError):
            # Refunded or cancelled meanwhile, or a conflict that outlasted the
            # retries: the others are released; this one is due again next hour.
            logger.exception("Hold of seller order #%s not released", pk)
            continue
        released += 1
    return released


def _release_one(pk: int, now: datetime) -> LedgerTransaction | None:
    return seller_order_hold_release(seller_order=SellerOrder(pk=pk), now=now)


def holds_due(*, now: datetime) -> list[int]:
    """The seller orders whose hold, by their seller's policy, is over (not released yet)."""
    book = PolicyBook.load()
    maybe_due = Q(order__paid_at__lte=now - timedelta(days=book.shortest_hold_days)) | Q(
        delivered_at__lte=now
    )
    candidates = (
        SellerOrder.objects.filter(
            maybe_due, released_at__isnull=True, order__paid_at__isnull=False, status__in=RELEASABLE
        )
        .values_list("pk", "seller_id", "order__paid_at", "delivered_at")
        .order_by("pk")
    )
    due = []
    for pk, seller_id, paid_at, delivered_at in candidates.iterator():
        policy = book.for_seller(seller_id)
        assert paid_at is not None  # filtered above
        if release_is_due(policy, paid_at=paid_at, delivered_at=delivered_at, now=now):
            due.append(pk)
    return due


def holds_due_amounts(*, now: datetime) -> dict[tuple[int, str], int]:
    """What releasing the due holds would move to available, per seller and currency
    (read only: for a dry run)."""
    due = holds_due(now=now)
    if not due:
        return {}
    pending = (
        LedgerEntry.objects.filter(account__kind=Kind.PENDING, order_line__seller_order_id__in=due)
        .values_list("account__seller_id", "account__currency")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    return {(seller_id, currency): -int(total) for seller_id, currency, total in pending if total}
