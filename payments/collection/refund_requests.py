"""Refund requests: a customer asks, the line's seller (or an operator) decides.

An approved request becomes a refund of what is left of the line, submitted
to the processor at once; the ledger moves when the processor confirms it.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.roles import is_operator, seller_for
from marketplace.kernel.errors import Conflict, InvalidRequest, InvalidState, NotFound
from marketplace.kernel.task_queue import enqueue_on_commit
from marketplace.models import OrderLine
from payments.collection.refunds import REFUNDABLE_ORDER_STATUSES, refund_create, refund_submit
from payments.ledger.audit import audit_record
from payments.ledger.locks import order_lock
from payments.models import AuditRecord, Refund, RefundRequest


def refund_request_create(*, customer: User, order_line: OrderLine, reason: str) -> RefundRequest:
    """The customer who placed the order asks for a line to be refunded (one open request each)."""
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("Tell the seller why you would like a refund.")
    if len(reason) > 255:
        raise InvalidRequest("Keep the reason under 255 characters.")
    if order_line.order.customer_id != customer.pk:
        raise NotFound("No such order line.")
    if order_line.order.status not in REFUNDABLE_ORDER_STATUSES:
        raise InvalidState("Only a paid order can be refunded.")
    if order_line.refundable_minor <= 0:
        raise InvalidState("This item has been refunded already.")
    try:
        with transaction.atomic():
            return RefundRequest.objects.create(
                order_line=order_line, requested_by=customer, reason=reason
            )
    except IntegrityError as exc:
        raise Conflict("You have already asked for a refund of this item.") from exc


def _may_decide(user: User, request: RefundRequest) -> bool:
    seller = seller_for(user)
    return is_operator(user) or (
        seller is not None and request.order_line.seller_order.seller_id == seller.pk
    )


def _locked_open(request: RefundRequest, by: User) -> RefundRequest:
    request = (
        RefundRequest.objects.select_for_update(no_key=True, of=("self",))
        .select_related("order_line__seller_order", "order_line__order")
        .get(pk=request.pk)
    )
    if not _may_decide(by, request):
        raise NotFound("No such refund request.")
    if request.status != RefundRequest.Status.REQUESTED:
        raise InvalidState(f"This request was {request.get_status_display().lower()} already.")
    return request


def refund_request_approve(
    *, request: RefundRequest, by: User, note: str = "", via: str = AuditRecord.Via.CODE
) -> Refund:
    """Approve: refund what is left of the line and send it to the processor. ``note``,
    why (an operator's reason), is kept on the request and in its history. Deciding
    twice (a double submit) is refused: the request is decided already."""
    with transaction.atomic():
        order_lock(request.order_line.order_id)
        request = _locked_open(request, by)
        refund = refund_create(
            order=request.order_line.order,
            order_line=request.order_line,
            reason=f"Refund request #{request.pk}: {request.reason}"[:255],
            requested_by=by,
        )
        request.status = RefundRequest.Status.APPROVED
        request.decided_by, request.decided_at, request.refund = by, timezone.now(), refund
        request.decision_note = note.strip()[:255]
        request.save(
            update_fields=["status", "decided_by", "decided_at", "decision_note", "refund"]
        )
        audit_record(target=request, action="approve", by=by, reason=note, via=via)
    return refund_submit(refund=refund)


@transaction.atomic
def refund_request_decline(
    *, request: RefundRequest, by: User, note: str = "", via: str = AuditRecord.Via.CODE
) -> RefundRequest:
    """Decline: nothing is refunded; the customer and the seller are emailed (once,
    after the commit)."""
    request = _locked_open(request, by)
    request.status = RefundRequest.Status.DECLINED
    request.decided_by, request.decided_at = by, timezone.now()
    request.decision_note = note.strip()[:255]
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(target=request, action="decline", by=by, reason=note, via=via)
    enqueue_on_commit("payments.tasks.refund_request_declined_notify_task", request.pk)
    return request
