"""Disputes in the ledger.

When a customer's bank disputes a payment, the processor withdraws the
disputed amount from the platform at once. Our policy:

- opened (``dispute:<id>:opened``): the processor account is credited and a
  platform ``disputes`` account debited for the amount; the sellers' share of
  it moves from their pending (or available, once released) account to a
  ``disputed`` account, so it cannot be paid out while the dispute is open.
  The amount is spread over the order's lines as a refund would be.
- won (``dispute:<id>:won``): the processor returns the money; the sellers'
  held share goes back to available.
- lost (``dispute:<id>:lost``): the money is gone. The sellers lose their held
  share (it was theirs) and the platform its commission on that part, the
  same split as a refund; nothing else moves.

Events may repeat or arrive out of order: each transition posts once.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from marketplace.models import Order, OrderLine
from payments.ledger import Posting, ledger_post, platform_account, seller_account
from payments.models import Dispute, DisputeLine, LedgerAccount, LedgerTransaction, PaymentAttempt
from payments.money import allocate
from payments.refunds import refund_split

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
    """Record a new dispute once and hold the sellers' part of it."""
    attempt = PaymentAttempt.objects.filter(
        processor=processor_name, processor_payment_id=payment_id
    ).first()
    if attempt is None:
        logger.warning("Dispute %s is on an unknown payment %s", processor_dispute_id, payment_id)
        return None
    order = Order.objects.select_for_update().get(pk=attempt.order_id)
    existing = Dispute.objects.filter(
        processor=processor_name, processor_dispute_id=processor_dispute_id
    ).first()
    if existing is not None:
        return existing
    if order.paid_at is None:
        raise ValueError(f"Order #{order.pk} has no captured payment to dispute.")
    lines = list(
        OrderLine.objects.select_for_update()
        .filter(order=order)
        .select_related("seller_order__seller")
        .order_by("pk")
    )
    left = [line.gross_minor - line.refunded_minor for line in lines]
    amount = min(amount_minor, sum(left))
    dispute = Dispute.objects.create(
        order=order,
        processor=processor_name,
        processor_dispute_id=processor_dispute_id,
        amount_minor=amount_minor,
        currency=order.currency,
        reason=reason[:100],
    )
    if amount <= 0:
        return dispute
    currency = order.currency
    postings = [
        Posting(platform_account(Kind.PROCESSOR, currency), -amount),
        Posting(platform_account(Kind.DISPUTES, currency), amount),
    ]
    dispute_lines = []
    for line, part in zip(lines, allocate(amount, left), strict=True):
        if not part:
            continue
        share, commission = refund_split(line, part)
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
            source = Kind.AVAILABLE if line.seller_order.released_at else Kind.PENDING
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
        description=f"Dispute {processor_dispute_id} on order #{order.pk}",
    )
    return dispute


@transaction.atomic
def dispute_closed(*, processor_name: str, processor_dispute_id: str, won: bool) -> Dispute | None:
    """Release (won) or give up (lost) what the dispute held, once."""
    dispute = (
        Dispute.objects.select_for_update()
        .filter(processor=processor_name, processor_dispute_id=processor_dispute_id)
        .first()
    )
    if dispute is None or dispute.status != Dispute.Status.OPEN:
        return dispute
    lines = list(dispute.lines.select_related("order_line__seller_order__seller"))
    held = sum(dl.amount_minor for dl in lines)
    currency = dispute.currency
    postings: list[Posting] = []
    if held:
        postings.append(Posting(platform_account(Kind.DISPUTES, currency), -held))
        if won:
            postings.append(Posting(platform_account(Kind.PROCESSOR, currency), held))
    for dl in lines:
        seller = dl.order_line.seller_order.seller
        if dl.seller_amount_minor:
            postings.append(
                Posting(
                    seller_account(seller, Kind.DISPUTED, currency),
                    dl.seller_amount_minor,
                    dl.order_line_id,
                )
            )
            if won:
                postings.append(
                    Posting(
                        seller_account(seller, Kind.AVAILABLE, currency),
                        -dl.seller_amount_minor,
                        dl.order_line_id,
                    )
                )
        if dl.commission_amount_minor and not won:
            postings.append(
                Posting(
                    platform_account(Kind.COMMISSION, currency),
                    dl.commission_amount_minor,
                    dl.order_line_id,
                )
            )
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
