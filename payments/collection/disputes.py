"""Disputes in the ledger.

When a customer's bank disputes a payment, the processor withdraws the
disputed amount from the platform at once. Our rules (docs/money.md,
"Disputes and refunds"):

- opened (``dispute:<id>:opened``): the processor account is credited and a
  platform ``disputes`` account debited for the **full** disputed amount, up to
  what the payment still holds (captured less the refunds that *succeeded*:
  a refund still pending does not shrink it). The sellers' share of it moves
  from their pending (or available, once released) account to a ``disputed``
  account, so it cannot be paid out while the dispute is open. The amount is
  spread over the order's lines as a refund would be. While a dispute is open
  or lost, the payment takes no refund (``refunds.refund_create`` refuses); a
  refund that was pending when it opened resolves against it
  (``refunds.refund_mark_succeeded``), even when its success is processed after
  the dispute was lost.
- won (``dispute:<id>:won``): the processor returns the money; the sellers'
  held share goes back where it came from: to pending while the sale's hold
  runs (it is released with the rest of the sale), to available after.
- lost (``dispute:<id>:lost``): the money is gone. The sellers lose what is
  still held for them and the platform its commission on that part, the same
  split as a refund; what a refund already gave back of the held amount was
  paid twice to the customer, and the platform bears it (``losses``).
- a dispute on a duplicate payment (one the order did not take, refunded when
  it arrived) is the platform's alone: it never touches a seller.
- the order's customer service fee: the disputed amount is spread over the
  lines and what is left of the fee (the fee less what succeeded refunds gave
  back of it and what other open or lost disputes hold of it) in proportion,
  so a dispute of the whole payment holds the whole fee
  (``Dispute.service_fee_minor``). It is the platform's alone: held in the
  ``disputes`` account with the rest, a loss takes it from the platform's
  ``service_fees`` account, a win gives it back to the processor account. What refunds
  and lost disputes give back beyond the fee was repaid twice: ``losses``
  (``payments.revenue.service_fees.service_fee_back_postings``).

Events may repeat or arrive out of order: each transition posts once.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from marketplace.kernel.money import allocate
from marketplace.models import Order, OrderLine, SellerOrder
from payments.collection.clawbacks import clawbacks_plan
from payments.collection.refunds import split_parts
from payments.ledger.locks import (
    order_lines_lock,
    order_lock,
    seller_orders_lock,
    sellers_money_lock,
)
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import (
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerTransaction,
    PaymentAttempt,
    Refund,
    RefundLine,
)
from payments.revenue.service_fees import service_fee_back_postings

logger = logging.getLogger(__name__)
Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


@transaction.atomic
def dispute_opened(
    *,
    processor_name: str,
    processor_dispute_id: str,
    payment_id: str,
    amount_minor: int,
    reason: str = "",
) -> Dispute | None:
    """Record a new dispute once and hold its amount (see the module docstring)."""
    attempt = PaymentAttempt.objects.filter(
        processor=processor_name, processor_payment_id=payment_id
    ).first()
    if attempt is None:
        logger.warning("Dispute %s is on an unknown payment %s", processor_dispute_id, payment_id)
        return None
    order = order_lock(attempt.order_id)
    existing = Dispute.objects.filter(
        processor=processor_name, processor_dispute_id=processor_dispute_id
    ).first()
    if existing is not None:
        return existing
    attempt.refresh_from_db(fields=["status"])
    if attempt.status in PaymentAttempt.OPEN or (
        attempt.status == PaymentAttempt.Status.SUCCEEDED and order.paid_at is None
    ):
        # The payment's own event is not processed yet: fail, to be retried after it.
        raise LookupError(
            f"The payment {payment_id} of dispute {processor_dispute_id} is not recorded yet."
        )
    dispute = Dispute.objects.create(
        order=order,
        payment_attempt=attempt,
        processor=processor_name,
        processor_dispute_id=processor_dispute_id,
        amount_minor=amount_minor,
        currency=attempt.currency,
        reason=reason[:100],
    )
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        _hold_sale(dispute, order)
    else:  # a duplicate payment, or one made after the order expired; refunded
        _hold_duplicate(dispute, attempt)
    return dispute


def _hold_duplicate(dispute: Dispute, attempt: PaymentAttempt) -> None:
    """A dispute on a payment the order did not take: the platform's money only."""
    amount = min(dispute.amount_minor, attempt.amount_minor)
    ledger_post(
        kind=TxnKind.DISPUTE_OPENED,
        idempotency_key=f"dispute:{dispute.pk}:opened",
        reference_type="dispute",
        reference_id=dispute.pk,
        postings=[
            Posting(platform_account(Kind.PROCESSOR, dispute.currency), -amount),
            Posting(platform_account(Kind.DISPUTES, dispute.currency), amount),
        ],
        description=(
            f"Dispute {dispute.processor_dispute_id} on a duplicate payment "
            f"of order #{dispute.order_id}"
        ),
    )


def _hold_sale(dispute: Dispute, order: Order) -> None:
    """Hold the disputed amount of a sale, spread over its lines, sellers' parts held."""
    seller_orders = seller_orders_lock(SellerOrder.objects.filter(order=order))
    released = {so.pk: so.released_at for so in seller_orders}
    lines = order_lines_lock(OrderLine.objects.filter(order=order).select_related("seller_order"))
    sellers_money_lock(so.seller_id for so in seller_orders)
    gone = _given_back_per_line(order)
    fee_left = _service_fee_left(order, dispute)
    left = []
    for line in lines:
        refunded, refunded_share, refunded_commission = gone.get(line.pk, (0, 0, 0))
        left.append(
            (
                line.gross_minor - refunded,
                line.seller_share_minor - refunded_share,
                line.commission_minor - refunded_commission,
            )
        )
    amount = min(dispute.amount_minor, sum(gross for gross, _, _ in left) + fee_left)
    if amount <= 0:
        return
    currency = dispute.currency
    postings = [
        Posting(platform_account(Kind.PROCESSOR, currency), -amount),
        Posting(platform_account(Kind.DISPUTES, currency), amount),
    ]
    dispute_lines = []
    *parts, fee_part = allocate(amount, [*(gross for gross, _, _ in left), fee_left])
    if fee_part:
        dispute.service_fee_minor = fee_part
        dispute.save(update_fields=["service_fee_minor"])
    for line, part, (_, share_left, commission_left) in zip(lines, parts, left, strict=True):
        if not part:
            continue
        share, commission = split_parts(
            part, share_left=share_left, commission_left=commission_left
        )
        dispute_lines.append(
            DisputeLine(
                dispute=dispute,
                order_line=line,
                amount_minor=part,
                seller_amount_minor=share,
                commission_amount_minor=commission,
            )
        )
        if share:
            seller = line.seller_order.seller
            source = Kind.AVAILABLE if released[line.seller_order_id] else Kind.PENDING
            postings += [
                Posting(seller_account(seller, source, currency), share, line.pk),
                Posting(seller_account(seller, Kind.DISPUTED, currency), -share, line.pk),
            ]
    DisputeLine.objects.bulk_create(dispute_lines)
    ledger_post(
        kind=TxnKind.DISPUTE_OPENED,
        idempotency_key=f"dispute:{dispute.pk}:opened",
        reference_type="dispute",
        reference_id=dispute.pk,
        postings=postings,
        description=f"Dispute {dispute.processor_dispute_id} on order #{order.pk}",
    )


def _service_fee_left(order: Order, dispute: Dispute) -> int:
    """What the payment still holds of the order's service fee: the fee less what
    succeeded refunds gave back of it and what other open or lost disputes hold."""

    if not order.service_fee_minor:
        return 0
    refunded = (
        Refund.objects.filter(order=order, status=Refund.Status.SUCCEEDED).aggregate(
            total=Sum("service_fee_minor")
        )["total"]
        or 0
    )
    held = (
        Dispute.objects.filter(order=order, status__in=Dispute.BARS_REFUNDS)
        .exclude(pk=dispute.pk)
        .aggregate(total=Sum("service_fee_minor"))["total"]
        or 0
    )
    return max(0, order.service_fee_minor - refunded - held)


def _given_back_per_line(order: Order) -> dict[int, tuple[int, int, int]]:
    """Per line, what the customer got back already or is disputing: succeeded refunds
    and the holds of other disputes not won (pending refunds do not count)."""
    gone: dict[int, tuple[int, int, int]] = {}
    refunded = (
        RefundLine.objects.filter(order_line__order=order, refund__status="succeeded")
        .values_list("order_line_id")
        .annotate(Sum("amount_minor"), Sum("seller_amount_minor"), Sum("commission_amount_minor"))
        .order_by()
    )
    held = (
        DisputeLine.objects.filter(
            order_line__order=order, dispute__status__in=Dispute.BARS_REFUNDS
        )
        .values_list("order_line_id")
        .annotate(Sum("amount_minor"), Sum("seller_amount_minor"), Sum("commission_amount_minor"))
        .order_by()
    )
    for line_id, amount, share, commission in [*refunded, *held]:
        before = gone.get(line_id, (0, 0, 0))
        gone[line_id] = (before[0] + amount, before[1] + share, before[2] + commission)
    return gone


@transaction.atomic
def dispute_closed(*, processor_name: str, processor_dispute_id: str, won: bool) -> Dispute | None:
    """Release (won) or give up (lost) what the dispute held, once."""
    found = Dispute.objects.filter(
        processor=processor_name, processor_dispute_id=processor_dispute_id
    ).first()
    if found is None:
        return None
    order_lock(found.order_id)
    dispute = Dispute.objects.select_for_update(no_key=True).get(pk=found.pk)
    if dispute.status != Dispute.Status.OPEN:
        return dispute
    lines = list(dispute.lines.select_related("order_line__seller_order__seller"))
    postings = (
        _close_sale(dispute, lines, won)
        if lines or dispute.service_fee_minor
        else _close_duplicate(dispute, won)
    )
    if not won:
        # What the seller lost, if it was transferred to them, is taken back from there.
        lost = {dl.order_line_id: dl.lost_seller_minor for dl in lines if dl.lost_seller_minor}
        clawbacks_plan(reason_type="dispute", reason_id=dispute.pk, seller_parts=lost)
    outcome = "won" if won else "lost"
    if postings:
        ledger_post(
            kind=TxnKind.DISPUTE_WON if won else TxnKind.DISPUTE_LOST,
            idempotency_key=f"dispute:{dispute.pk}:{outcome}",
            reference_type="dispute",
            reference_id=dispute.pk,
            postings=postings,
            description=f"Dispute {processor_dispute_id} {outcome}",
        )
    dispute.status = Dispute.Status.WON if won else Dispute.Status.LOST
    dispute.closed_at = timezone.now()
    dispute.save(update_fields=["status", "closed_at"])
    return dispute


def _close_sale(dispute: Dispute, lines: list[DisputeLine], won: bool) -> list[Posting]:
    seller_orders = seller_orders_lock(
        SellerOrder.objects.filter(pk__in={dl.order_line.seller_order_id for dl in lines})
    )
    released = {so.pk: so.released_at for so in seller_orders}
    sellers_money_lock(so.seller_id for so in seller_orders)
    currency = dispute.currency
    held = sum(dl.amount_minor for dl in lines) + dispute.service_fee_minor
    postings = [Posting(platform_account(Kind.DISPUTES, currency), -held)]
    if won:
        postings.append(Posting(platform_account(Kind.PROCESSOR, currency), held))
    repaid_twice = 0
    if not won:  # the platform loses its service fee's part (beyond the fee: repaid twice)
        postings += service_fee_back_postings(
            order_id=dispute.order_id, change_minor=dispute.service_fee_minor
        )
    for dl in lines:
        line = dl.order_line
        seller = line.seller_order.seller
        still_held = dl.lost_seller_minor
        if still_held:
            postings.append(
                Posting(seller_account(seller, Kind.DISPUTED, currency), still_held, line.pk)
            )
            if won:  # back where it came from: pending while the sale's hold runs
                back = Kind.AVAILABLE if released[line.seller_order_id] else Kind.PENDING
                postings.append(
                    Posting(seller_account(seller, back, currency), -still_held, line.pk)
                )
        if won:
            continue
        if dl.lost_commission_minor:
            postings.append(
                Posting(
                    platform_account(Kind.COMMISSION, currency), dl.lost_commission_minor, line.pk
                )
            )
        repaid_twice += dl.refunded_seller_minor + dl.refunded_commission_minor
    if repaid_twice:
        postings.append(Posting(platform_account(Kind.LOSSES, currency), repaid_twice))
    return postings


def _close_duplicate(dispute: Dispute, won: bool) -> list[Posting]:
    attempt = dispute.payment_attempt
    if attempt is None or attempt.status == PaymentAttempt.Status.SUCCEEDED:
        return []  # a sale's dispute that found nothing left to hold
    amount = min(dispute.amount_minor, attempt.amount_minor)
    currency = dispute.currency
    back = Kind.PROCESSOR if won else Kind.LOSSES
    return [
        Posting(platform_account(Kind.DISPUTES, currency), -amount),
        Posting(platform_account(back, currency), amount),
    ]
