"""Refunds, the money side.

A refund is created for a whole order, one seller's part, one line, or a
partial amount of any of those, and reserved on the lines at once, so two
refunds can never together give back more than was paid (the lines are
locked while the amount is checked). The amount is spread over the lines in
proportion to what each still has to refund, and within a line between the
seller's share and the commission: in proportion to what is left of each when
``PAYMENTS_REFUND_COMMISSION`` is on (the default: the platform gives its
commission back pro rata), from the seller's share first when it is off. All
splits use ``allocate``: no minor unit is lost, and refunding everything gives
back exactly the share and the commission.

The ledger is written when the processor confirms (``refund_mark_succeeded``):
sellers' pending (or available, once released) and the commission are debited,
the processor account credited, in one transaction keyed ``refund:<id>``. A
failed refund releases its reservation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import User
from marketplace.errors import InvalidRequest, InvalidState
from marketplace.models import Order, OrderLine, SellerOrder
from payments.ledger import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerTransaction, Refund, RefundLine
from payments.money import allocate, is_whole_number

Kind = LedgerAccount.Kind
logger = logging.getLogger(__name__)
REFUNDABLE_ORDER_STATUSES = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)
REASON_MAX_LENGTH = Refund._meta.get_field("reason").max_length or 255


def refund_split(line: OrderLine, amount: int) -> tuple[int, int]:
    """(seller part, commission part) of refunding ``amount`` of a line."""
    commission_left = line.commission_minor - line.refunded_commission_minor
    share_left = line.seller_share_minor - line.refunded_seller_minor
    if amount > commission_left + share_left:
        raise InvalidRequest("That is more than is left to refund on the line.")
    if settings.PAYMENTS_REFUND_COMMISSION:
        commission, share = allocate(amount, [commission_left, share_left])
    else:
        share = min(amount, share_left)
        commission = amount - share
    return share, commission


@transaction.atomic
def refund_create(
    *,
    order: Order,
    amount_minor: int | None = None,
    seller_order: SellerOrder | None = None,
    order_line: OrderLine | None = None,
    reason: str = "",
    requested_by: User | None = None,
) -> Refund:
    """Reserve a refund of ``amount_minor`` (everything left when None) of an order,
    a seller's part or a line; see the module docstring for how it is split."""
    if seller_order is not None and order_line is not None:
        raise InvalidRequest("Refund a seller's part or a line, not both.")
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidRequest(f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in REFUNDABLE_ORDER_STATUSES:
        raise InvalidState("Only a paid order can be refunded.")
    lines_query = OrderLine.objects.select_for_update().filter(order=order).order_by("pk")
    if seller_order is not None:
        lines_query = lines_query.filter(seller_order=seller_order)
    if order_line is not None:
        lines_query = lines_query.filter(pk=order_line.pk)
    lines = list(lines_query)
    if not lines:
        raise InvalidRequest("Nothing in this order matches the refund.")
    left = [line.gross_minor - line.refunded_minor for line in lines]
    refundable = sum(left)
    if refundable == 0:
        raise InvalidRequest("Everything has been refunded already.")
    if amount_minor is None:
        amount_minor = refundable
    if not is_whole_number(amount_minor) or amount_minor <= 0:
        raise InvalidRequest("A refund is a whole number of minor units above zero.")
    if amount_minor > refundable:
        raise InvalidRequest(
            f"At most {refundable} (minor units of {order.currency}) can still be refunded."
        )

    refund = Refund.objects.create(
        order=order,
        amount_minor=amount_minor,
        currency=order.currency,
        reason=reason,
        requested_by=requested_by,
    )
    refund_lines = []
    by_seller_order: dict[int, int] = {}
    for line, part in zip(lines, allocate(amount_minor, left), strict=True):
        if not part:
            continue
        share, commission = refund_split(line, part)
        refund_lines.append(
            RefundLine(
                refund=refund,
                order_line=line,
                amount_minor=part,
                seller_amount_minor=share,
                commission_amount_minor=commission,
            )
        )
        OrderLine.objects.filter(pk=line.pk).update(
            refunded_minor=F("refunded_minor") + part,
            refunded_seller_minor=F("refunded_seller_minor") + share,
            refunded_commission_minor=F("refunded_commission_minor") + commission,
        )
        by_seller_order[line.seller_order_id] = by_seller_order.get(line.seller_order_id, 0) + part
    RefundLine.objects.bulk_create(refund_lines)
    for seller_order_id, part in by_seller_order.items():
        SellerOrder.objects.filter(pk=seller_order_id).update(
            refunded_minor=F("refunded_minor") + part
        )
    Order.objects.filter(pk=order.pk).update(refunded_minor=F("refunded_minor") + amount_minor)
    from payments.integration_events import refund_created_announce

    refund_created_announce(refund=refund)
    return refund


@transaction.atomic
def refund_mark_succeeded(*, refund: Refund) -> LedgerTransaction:
    """The processor gave the money back: write the refund to the ledger (once)."""
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    key = f"refund:{refund.pk}"
    # Every refund path locks the order before its lines and seller orders,
    # so concurrent refunds of one order queue up instead of deadlocking.
    Order.objects.select_for_update().get(pk=refund.order_id)
    if refund.status == Refund.Status.SUCCEEDED:
        return LedgerTransaction.objects.get(idempotency_key=key)
    if refund.status == Refund.Status.FAILED:
        raise InvalidState("A failed refund cannot succeed; create a new one.")
    refund_lines = list(
        refund.lines.select_related("order_line__seller_order__seller").order_by("pk")
    )
    # Lock the seller orders so a hold release cannot move the money meanwhile.
    seller_order_ids = sorted({rl.order_line.seller_order_id for rl in refund_lines})
    released = dict(
        SellerOrder.objects.select_for_update()
        .filter(pk__in=seller_order_ids)
        .order_by("pk")
        .values_list("pk", "released_at")
    )
    currency = refund.currency
    commission = platform_account(Kind.COMMISSION, currency)
    postings = [Posting(platform_account(Kind.PROCESSOR, currency), -refund.amount_minor)]
    accounts: dict[tuple[int, str], LedgerAccount] = {}
    for refund_line in refund_lines:
        line = refund_line.order_line
        kind = Kind.AVAILABLE if released[line.seller_order_id] else Kind.PENDING
        if refund_line.seller_amount_minor:
            seller = line.seller_order.seller
            if (seller.pk, kind) not in accounts:
                accounts[seller.pk, kind] = seller_account(seller, kind, currency)
            account = accounts[seller.pk, kind]
            postings.append(Posting(account, refund_line.seller_amount_minor, line.pk))
        if refund_line.commission_amount_minor:
            postings.append(Posting(commission, refund_line.commission_amount_minor, line.pk))
    txn = ledger_post(
        kind=LedgerTransaction.Kind.REFUND,
        idempotency_key=key,
        reference_type="refund",
        reference_id=refund.pk,
        postings=postings,
        description=f"Refund #{refund.pk} of order #{refund.order_id}",
    )
    refund.status = Refund.Status.SUCCEEDED
    refund.completed_at = timezone.now()
    refund.save(update_fields=["status", "completed_at"])
    _refresh_statuses(refund.order_id, seller_order_ids)
    return txn


@transaction.atomic
def refund_mark_failed(*, refund: Refund) -> Refund:
    """The processor refused the refund: release what it reserved on the lines. Safe to repeat."""
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status == Refund.Status.FAILED:
        return refund
    if refund.status == Refund.Status.SUCCEEDED:
        raise InvalidState("A refund that succeeded cannot fail.")
    Order.objects.select_for_update().get(pk=refund.order_id)
    for refund_line in refund.lines.select_related("order_line").order_by("order_line_id"):
        OrderLine.objects.filter(pk=refund_line.order_line_id).update(
            refunded_minor=F("refunded_minor") - refund_line.amount_minor,
            refunded_seller_minor=F("refunded_seller_minor") - refund_line.seller_amount_minor,
            refunded_commission_minor=F("refunded_commission_minor")
            - refund_line.commission_amount_minor,
        )
        SellerOrder.objects.filter(pk=refund_line.order_line.seller_order_id).update(
            refunded_minor=F("refunded_minor") - refund_line.amount_minor
        )
    Order.objects.filter(pk=refund.order_id).update(
        refunded_minor=F("refunded_minor") - refund.amount_minor
    )
    refund.status = Refund.Status.FAILED
    refund.completed_at = timezone.now()
    refund.save(update_fields=["status", "completed_at"])
    return refund


def _refresh_statuses(order_id: int, seller_order_ids: list[int]) -> None:
    """Refunded or partially refunded, from the refunds that succeeded.

    A cancelled seller order stays cancelled.
    """
    succeeded = dict(
        RefundLine.objects.filter(
            refund__status=Refund.Status.SUCCEEDED, order_line__seller_order_id__in=seller_order_ids
        )
        .values_list("order_line__seller_order_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    for seller_order in SellerOrder.objects.filter(pk__in=seller_order_ids):
        if seller_order.status == SellerOrder.Status.CANCELLED:
            continue
        done = succeeded.get(seller_order.pk, 0)
        if done == seller_order.gross_minor:
            new_status = SellerOrder.Status.REFUNDED
        elif done and seller_order.status == SellerOrder.Status.PAID:
            # Shipped and delivered parts keep their fulfilment status;
            # their refunded amount shows the partial refund.
            new_status = SellerOrder.Status.PARTIALLY_REFUNDED
        else:
            continue
        SellerOrder.objects.filter(pk=seller_order.pk).update(status=new_status)
    order = Order.objects.get(pk=order_id)
    done = (
        Refund.objects.filter(order_id=order_id, status=Refund.Status.SUCCEEDED).aggregate(
            total=Sum("amount_minor")
        )["total"]
        or 0
    )
    status = Order.Status.REFUNDED if done == order.total_minor else Order.Status.PARTIALLY_REFUNDED
    if done and order.status != status:
        Order.objects.filter(pk=order_id).update(status=status)


def refund_submit(*, refund: Refund) -> Refund:
    """Ask the processor to give the money back (key ``refund-<id>``; safe to retry).

    The ledger moves when the processor's refund event confirms it
    (``refund_sync``); a refusal now releases the reservation at once.
    """
    from payments.models import PaymentAttempt
    from payments.processors import get_processor
    from payments.processors.base import InvalidProcessorRequest

    refund = Refund.objects.get(pk=refund.pk)
    if refund.status != Refund.Status.PENDING or refund.processor_refund_id:
        return refund
    attempt = PaymentAttempt.objects.filter(
        order_id=refund.order_id, status=PaymentAttempt.Status.SUCCEEDED
    ).first()
    if attempt is None:
        Refund.objects.filter(pk=refund.pk).update(
            failure_reason="The order has no captured payment at the processor."
        )
        return refund_mark_failed(refund=refund)
    processor = get_processor(attempt.processor)
    try:
        result = processor.refund_create(
            payment_id=attempt.processor_payment_id,
            amount_minor=refund.amount_minor,
            metadata={"refund_id": str(refund.pk), "order_id": str(refund.order_id)},
            idempotency_key=f"refund-{refund.pk}",
        )
    except InvalidProcessorRequest as exc:
        Refund.objects.filter(pk=refund.pk).update(failure_reason=exc.message[:255])
        return refund_mark_failed(refund=refund)
    Refund.objects.filter(pk=refund.pk).update(
        processor=processor.name, processor_refund_id=result.id
    )
    refund.refresh_from_db()
    return refund


def refund_sync(*, processor_name: str, processor_refund_id: str, data: Mapping[str, Any]) -> None:
    """Apply the processor's refund state to our refund (found by id, or by our metadata)."""
    refund = Refund.objects.filter(
        processor=processor_name, processor_refund_id=processor_refund_id
    ).first()
    metadata = data.get("metadata") or {}
    if refund is None and isinstance(metadata, Mapping) and metadata.get("refund_id"):
        refund = Refund.objects.filter(pk=int(metadata["refund_id"])).first()
    if refund is None:
        return  # not one of ours (e.g. a refund made in the processor's dashboard)
    status = str(data.get("status", ""))
    if status == "succeeded":
        refund_mark_succeeded(refund=refund)
    elif status in ("failed", "canceled"):
        refund_mark_failed(refund=refund)


def refunds_submit_pending(*, older_than_seconds: int = 120) -> int:
    """Send again the refunds whose submission to the processor did not get through."""
    from datetime import timedelta

    from payments.processors.base import ProcessorError

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for refund in Refund.objects.filter(
        status=Refund.Status.PENDING, processor_refund_id="", created_at__lt=cutoff
    ).order_by("pk"):
        try:
            refund_submit(refund=refund)
        except ProcessorError:
            continue  # still unreachable: next run
        except Exception:
            logger.exception("Refund #%s could not be sent", refund.pk)
            continue
        sent += 1
    return sent
