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

An order with a customer's service fee gives it back pro rata with its lines
(payments/revenue/service_fees.py ``service_fee_refund_part``, cumulative: refunding
every line gives back the whole fee exactly): the refund's ``amount_minor``,
what the processor sends back, is the lines' parts plus that fee part, kept
in ``Refund.service_fee_minor`` and counted in ``Order.refunded_minor`` and
``Order.service_fee_refunded_minor`` (a failed refund releases both). The
``amount_minor`` asked of ``refund_create`` is what comes from the lines.

The ledger is written when the processor confirms (``refund_mark_succeeded``):
sellers' pending (or available, once released) and the commission are debited,
the processor account credited, in one transaction keyed ``refund:<id>``. A
failed refund releases its reservation. The service fee's part comes out of
the platform's ``service_fees`` account, never from a seller.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.currencies import format_amount
from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.kernel.money import allocate, is_whole_number
from marketplace.kernel.task_queue import enqueue_on_commit
from marketplace.models import Order, OrderLine, SellerOrder
from payments.collection.clawbacks import clawbacks_plan
from payments.integrations.announcements import refund_created_announce
from payments.ledger.audit import audit_history, audit_record
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
    LedgerEntry,
    LedgerTransaction,
    PaymentAttempt,
    Payout,
    PayoutEntry,
    Refund,
    RefundLine,
    RefundRequest,
)
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, ProcessorError
from payments.revenue.service_fees import service_fee_back_postings, service_fee_refund_part

Kind = LedgerAccount.Kind
logger = logging.getLogger(__name__)
REFUNDABLE_ORDER_STATUSES = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)
REASON_MAX_LENGTH = Refund._meta.get_field("reason").max_length or 255


def refund_split(line: OrderLine, amount: int) -> tuple[int, int]:
    """(seller part, commission part) of refunding ``amount`` of a line."""
    return split_parts(
        amount,
        share_left=line.seller_share_minor - line.refunded_seller_minor,
        commission_left=line.commission_minor - line.refunded_commission_minor,
    )


def split_parts(amount: int, *, share_left: int, commission_left: int) -> tuple[int, int]:
    """(seller part, commission part) of giving back ``amount`` of what is left of a line:
    pro rata with ``PAYMENTS_REFUND_COMMISSION`` (the default), else the seller's first."""
    if amount > commission_left + share_left:
        raise InvalidRequest("That is more than is left to refund on the line.")
    if settings.PAYMENTS_REFUND_COMMISSION:
        commission, share = allocate(amount, [commission_left, share_left])
    else:
        share = min(amount, share_left)
        commission = amount - share
    return share, commission


def order_refund_barred(order_id: int) -> Dispute | None:
    """The dispute that bars refunds of the order's payment, if any: one open or lost
    on the captured payment (a dispute on a duplicate payment does not)."""
    return (
        Dispute.objects.filter(order_id=order_id, status__in=Dispute.BARS_REFUNDS)
        .filter(
            Q(payment_attempt__isnull=True)
            | Q(payment_attempt__status=PaymentAttempt.Status.SUCCEEDED)
        )
        .order_by("pk")
        .first()
    )


def refund_refusal_if_disputed(order_id: int) -> None:
    """Raise the clear error every entry point shows for a refund of a disputed payment."""
    dispute = order_refund_barred(order_id)
    if dispute is not None:
        state = "is open" if dispute.status == Dispute.Status.OPEN else "was lost"
        raise InvalidState(
            f"This payment is disputed (dispute {dispute.processor_dispute_id} {state}): "
            "it cannot be refunded; the card network decides what the customer gets back.",
            code="payment_disputed",
        )


@transaction.atomic
def refund_create(
    *,
    order: Order,
    amount_minor: int | None = None,
    seller_order: SellerOrder | None = None,
    order_line: OrderLine | None = None,
    reason: str = "",
    requested_by: User | None = None,
    line_amounts: Mapping[int, int] | None = None,
) -> Refund:
    """Reserve a refund of ``amount_minor`` (everything left when None) of an order,
    a seller's part or a line; see the module docstring for how it is split.

    ``line_amounts`` (order line id to amount) says exactly what each line gives back
    instead of spreading one amount: each must be at most what is left of its line."""
    if sum(x is not None for x in (seller_order, order_line, line_amounts)) > 1:
        raise InvalidRequest("Refund a seller's part, a line or chosen lines, not several.")
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidRequest(f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    order = order_lock(order.pk)
    if order.status not in REFUNDABLE_ORDER_STATUSES:
        raise InvalidState("Only a paid order can be refunded.")
    refund_refusal_if_disputed(order.pk)
    lines_query = OrderLine.objects.filter(order=order)
    if seller_order is not None:
        lines_query = lines_query.filter(seller_order=seller_order)
    if order_line is not None:
        lines_query = lines_query.filter(pk=order_line.pk)
    if line_amounts is not None:
        lines_query = lines_query.filter(pk__in=list(line_amounts))
    # The lock order (payments.ledger.locks): seller orders, lines, then the sellers' money
    # locks, since a refund of a released sale claims part of the available balance.
    seller_orders = seller_orders_lock(
        SellerOrder.objects.filter(pk__in=lines_query.values("seller_order_id"))
    )
    lines = order_lines_lock(lines_query)
    sellers_money_lock(so.seller_id for so in seller_orders)
    if not lines:
        raise InvalidRequest("Nothing in this order matches the refund.")
    left = [line.gross_minor - line.refunded_minor for line in lines]
    refundable = sum(left)
    if refundable == 0:
        raise InvalidRequest("Everything has been refunded already.")
    if line_amounts is not None:
        parts = _chosen_parts(lines, left, line_amounts, order.currency)
        if amount_minor is not None and amount_minor != sum(parts):
            raise InvalidRequest("The amounts of the lines do not add up to the refund.")
        amount_minor = sum(parts)
    if amount_minor is None:
        amount_minor = refundable
    if not is_whole_number(amount_minor) or amount_minor <= 0:
        raise InvalidRequest("A refund is a whole number of minor units above zero.")
    if amount_minor > refundable:
        raise InvalidRequest(
            f"At most {refundable} (minor units of {order.currency}) can still be refunded."
        )
    if line_amounts is None:
        parts = allocate(amount_minor, left)
    fee_part = order_service_fee_part(order, amount_minor)

    refund = Refund.objects.create(
        order=order,
        amount_minor=amount_minor + fee_part,
        service_fee_minor=fee_part,
        currency=order.currency,
        reason=reason,
        requested_by=requested_by,
    )
    refund_lines = []
    by_seller_order: dict[int, int] = {}
    for line, part in zip(lines, parts, strict=True):
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
    Order.objects.filter(pk=order.pk).update(
        refunded_minor=F("refunded_minor") + amount_minor + fee_part,
        service_fee_refunded_minor=F("service_fee_refunded_minor") + fee_part,
    )

    refund_created_announce(refund=refund)
    return refund


def order_service_fee_part(order: Order, lines_amount_minor: int) -> int:
    """The service fee's part of refunding ``lines_amount_minor`` more of the order's
    lines (read from the order's counters: call it under the order's lock to act)."""
    if not order.service_fee_minor:
        return 0
    lines_refunded = order.refunded_minor - order.service_fee_refunded_minor
    return service_fee_refund_part(
        fee_minor=order.service_fee_minor,
        fee_refunded_minor=order.service_fee_refunded_minor,
        lines_gross_minor=order.total_minor - order.service_fee_minor,
        lines_refunded_after_minor=lines_refunded + lines_amount_minor,
    )


def _chosen_parts(
    lines: list[OrderLine], left: list[int], line_amounts: Mapping[int, int], currency: str
) -> list[int]:
    """The amount of each (locked) line asked for, checked against what is left of it."""
    if {line.pk for line in lines} != set(line_amounts):
        raise InvalidRequest("A line chosen is not part of this order.")
    parts = []
    for line, line_left in zip(lines, left, strict=True):
        part = line_amounts[line.pk]
        if not is_whole_number(part) or part < 0:
            raise InvalidRequest(f"The amount for “{line.title}” cannot be negative.")
        if part > line_left:
            raise InvalidRequest(
                f"At most {format_amount(line_left, currency)} of “{line.title}” can still "
                "be refunded."
            )
        parts.append(part)
    return parts


def _refund_locked(refund: Refund) -> tuple[Refund, list[RefundLine], list[SellerOrder]]:
    """The refund and what it moves, under the locks of ``payments.ledger.locks`` in order:
    order, refund, seller orders, lines, sellers."""
    order_id = Refund.objects.values_list("order_id", flat=True).get(pk=refund.pk)
    order_lock(order_id)
    refund = Refund.objects.select_for_update(no_key=True).get(pk=refund.pk)
    list(  # the order's disputes that a refund may resolve against, with the refund
        Dispute.objects.select_for_update(no_key=True, of=("self",))
        .filter(order_id=order_id, status__in=Dispute.BARS_REFUNDS)
        .order_by("pk")
    )
    refund_lines = list(
        refund.lines.select_related("order_line__seller_order__seller").order_by("order_line_id")
    )
    seller_orders = seller_orders_lock(
        SellerOrder.objects.filter(pk__in={rl.order_line.seller_order_id for rl in refund_lines})
    )
    order_lines_lock(OrderLine.objects.filter(pk__in=[rl.order_line_id for rl in refund_lines]))
    sellers_money_lock(so.seller_id for so in seller_orders)
    return refund, refund_lines, seller_orders


@transaction.atomic
def refund_mark_succeeded(*, refund: Refund) -> LedgerTransaction:
    """The processor gave the money back: write the refund to the ledger (once).

    Each seller's part comes out of their pending account, or available once the
    sale was released. A refund that succeeds while a dispute holds the same line
    (it was pending when the dispute opened) is resolved against the dispute: the
    seller's part comes out of what the dispute holds for the line, recorded on the
    dispute line, so the seller is charged once whatever the dispute's outcome
    (docs/money.md, "Disputes and refunds"). A success processed after the dispute
    was lost (the refund succeeded before the dispute, its event came late) resolves
    against the lost hold the same way: the dispute took that part from the seller and
    the commission already, so it goes to the platform's ``losses`` (the customer was
    repaid twice), and the books end as if the events had come the other way round.
    """
    refund, refund_lines, seller_orders = _refund_locked(refund)
    key = f"refund:{refund.pk}"
    if refund.status == Refund.Status.SUCCEEDED:
        return LedgerTransaction.objects.get(idempotency_key=key)
    if refund.status == Refund.Status.FAILED:
        raise InvalidState("A failed refund cannot succeed; create a new one.")
    released = {so.pk: so.released_at for so in seller_orders}
    holds = _dispute_holds(refund.order_id)
    currency = refund.currency
    commission = platform_account(Kind.COMMISSION, currency)
    postings = [Posting(platform_account(Kind.PROCESSOR, currency), -refund.amount_minor)]
    # Its service fee part, given back by the platform (beyond the fee: repaid twice).
    postings += service_fee_back_postings(
        order_id=refund.order_id, change_minor=refund.service_fee_minor
    )
    clawable: dict[int, int] = {}  # per line, the seller's part taken from available
    for refund_line in refund_lines:
        line = refund_line.order_line
        seller = line.seller_order.seller
        share_left = refund_line.seller_amount_minor
        commission_left = refund_line.commission_amount_minor
        commission_lost_already = 0  # taken from lost holds: the dispute took it
        taken_from_holds = [0, 0]
        for hold in holds.get(line.pk, []):
            # The dispute's status was read under its lock (``_refund_locked``).
            taken = min(share_left, hold.lost_seller_minor)
            taken_commission = min(commission_left, hold.lost_commission_minor)
            if not (taken or taken_commission):
                continue
            hold.refunded_seller_minor += taken
            hold.refunded_commission_minor += taken_commission
            hold.save(update_fields=["refunded_seller_minor", "refunded_commission_minor"])
            share_left -= taken
            commission_left -= taken_commission
            taken_from_holds[0] += taken
            taken_from_holds[1] += taken_commission
            if hold.dispute.status == Dispute.Status.OPEN:
                # The seller's part comes out of the hold; the commission's part is given
                # back below, and a loss of the dispute no longer takes it.
                if taken:
                    held = seller_account(seller, Kind.DISPUTED, currency)
                    postings.append(Posting(held, taken, line.pk))
            else:
                # Lost already (the success arrived after the loss): the dispute took the
                # seller's part and the commission's part from them; the customer was
                # repaid twice, which the platform bears, as when the dispute is lost
                # after the refund succeeded (``disputes._close_sale``).
                commission_lost_already += taken_commission
                postings.append(
                    Posting(
                        platform_account(Kind.LOSSES, currency),
                        taken + taken_commission,
                        line.pk,
                    )
                )
        if any(taken_from_holds):
            refund_line.dispute_seller_minor, refund_line.dispute_commission_minor = (
                taken_from_holds
            )
            refund_line.save(update_fields=["dispute_seller_minor", "dispute_commission_minor"])
        if share_left:
            kind = Kind.AVAILABLE if released[line.seller_order_id] else Kind.PENDING
            postings.append(Posting(seller_account(seller, kind, currency), share_left, line.pk))
            if kind == Kind.AVAILABLE:
                clawable[line.pk] = clawable.get(line.pk, 0) + share_left
        given_back = refund_line.commission_amount_minor - commission_lost_already
        if given_back:
            postings.append(Posting(commission, given_back, line.pk))
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
    _refresh_statuses(refund.order_id, sorted(released))
    _close_requests_refunded_in_full(refund, [rl.order_line_id for rl in refund_lines])
    _notify_after_commit(refund.pk)
    # A part already transferred to the seller is taken back from there if it can be.
    clawbacks_plan(reason_type="refund", reason_id=refund.pk, seller_parts=clawable)
    return txn


def _close_requests_refunded_in_full(refund: Refund, line_ids: list[int]) -> None:
    """A customer's request still waiting on a line that this refund leaves refunded in
    full (by refunds that succeeded) has nothing left to decide: it is closed as
    refunded otherwise, in the refund's transaction (the order's lock is held, as when
    a request is approved), and nobody is told it was declined."""

    refunded = dict(
        RefundLine.objects.filter(
            order_line_id__in=line_ids, refund__status=Refund.Status.SUCCEEDED
        )
        .values_list("order_line_id")
        .annotate(total=Sum("amount_minor"))
    )
    full = [
        line.pk
        for line in OrderLine.objects.filter(pk__in=line_ids)
        if refunded.get(line.pk, 0) >= line.gross_minor
    ]
    waiting = RefundRequest.objects.select_for_update(no_key=True).filter(
        order_line_id__in=full, status=RefundRequest.Status.REQUESTED
    )
    for request in waiting:
        request.status = RefundRequest.Status.REFUNDED
        request.decided_at = timezone.now()
        request.decision_note = f"Refunded in full by refund #{refund.pk}."
        request.save(update_fields=["status", "decided_at", "decision_note"])
        audit_record(
            target=request, action="closed", by=None, reason=request.decision_note, via="system"
        )


def _notify_after_commit(refund_id: int) -> None:
    """The customer's and the sellers' emails about the refund, queued once it commits."""

    enqueue_on_commit("payments.tasks.refund_succeeded_notify_task", refund_id)


def _dispute_holds(order_id: int) -> dict[int, list[DisputeLine]]:
    """What open or lost disputes of the order's captured payment hold, per order line
    (the disputes were locked with the refund: step 2 of the lock order)."""
    disputes = Dispute.objects.filter(order_id=order_id, status__in=Dispute.BARS_REFUNDS)
    holds: dict[int, list[DisputeLine]] = {}
    for dispute_line in DisputeLine.objects.filter(dispute__in=disputes).select_related("dispute"):
        holds.setdefault(dispute_line.order_line_id, []).append(dispute_line)
    return holds


@transaction.atomic
def refund_mark_failed(*, refund: Refund) -> Refund:
    """The processor refused the refund: release what it reserved on the lines. Safe to
    repeat. A refund reported failed after it succeeded (the customer's bank sent it
    back) is reversed in the ledger (``refund_reverse``)."""
    refund, refund_lines, _ = _refund_locked(refund)
    if refund.status == Refund.Status.FAILED:
        return refund
    if refund.status == Refund.Status.SUCCEEDED:
        return _refund_reverse(refund, refund_lines)
    _release_reservation(refund, refund_lines)
    refund.status = Refund.Status.FAILED
    refund.completed_at = timezone.now()
    refund.save(update_fields=["status", "completed_at"])
    return refund


def _release_reservation(refund: Refund, refund_lines: list[RefundLine]) -> None:
    for refund_line in refund_lines:
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
        refunded_minor=F("refunded_minor") - refund.amount_minor,
        service_fee_refunded_minor=F("service_fee_refunded_minor") - refund.service_fee_minor,
    )


def _refund_reverse(refund: Refund, refund_lines: list[RefundLine]) -> Refund:
    """A succeeded refund that the processor then reports failed: the money came back.

    One transaction (``refund:<id>:reversed``) gives back every entry of the refund:
    the processor account gets the amount again, the commission its part, and each
    seller their part, to where their sale's money is now (available once released,
    else pending). What the refund took from a dispute's hold goes back to that
    dispute: into its hold while it is open; to the seller once it was won; to the
    platform's ``losses`` once it was lost (the customer was not repaid twice after
    all; the dispute line's record of the refund is undone, so the lost dispute has
    taken that part). The service fee's part comes back from where the rule of
    ``service_fee_back_postings`` put it. The reservation on the lines is released, so
    the amount can be refunded again, and the order's status follows.
    """
    released = dict(
        SellerOrder.objects.filter(
            pk__in={rl.order_line.seller_order_id for rl in refund_lines}
        ).values_list("pk", "released_at")
    )
    lines = {rl.order_line_id: rl for rl in refund_lines}
    currency = refund.currency
    original = list(
        LedgerEntry.objects.filter(
            transaction__idempotency_key=f"refund:{refund.pk}"
        ).select_related("account__seller")
    )

    def now_at(seller: Any, line_id: int) -> LedgerAccount:
        seller_order_id = lines[line_id].order_line.seller_order_id
        kind = Kind.AVAILABLE if released[seller_order_id] else Kind.PENDING
        return seller_account(seller, kind, currency)

    postings: list[Posting] = []
    commission_to_losses: dict[int, int] = {}
    from_held: dict[int, int] = {}  # per line, what the refund took from sellers' holds
    commission_given: dict[int, int] = {}  # per line, what the commission gave back
    for entry in original:
        if entry.order_line_id is None:
            continue
        if entry.account.kind == Kind.DISPUTED:
            from_held[entry.order_line_id] = (
                from_held.get(entry.order_line_id, 0) + entry.amount_minor
            )
        elif entry.account.kind == Kind.COMMISSION:
            commission_given[entry.order_line_id] = (
                commission_given.get(entry.order_line_id, 0) + entry.amount_minor
            )
    for line_id, refund_line in lines.items():
        if not (refund_line.dispute_seller_minor or refund_line.dispute_commission_minor):
            continue
        seller = refund_line.order_line.seller_order.seller
        holds = list(
            DisputeLine.objects.filter(order_line_id=line_id)
            .select_related("dispute")
            .order_by("-pk")
        )
        # Taken from a dispute already lost (the success came after the loss): the
        # refund's losses and commission entries are given back as they are, below; the
        # lost dispute takes its part again.
        lost_commission = refund_line.commission_amount_minor - commission_given.get(line_id, 0)
        lost_share = refund_line.dispute_seller_minor - from_held.get(line_id, 0)
        for hold in holds:
            if hold.dispute.status != Dispute.Status.LOST:
                continue
            back = min(lost_share, hold.refunded_seller_minor)
            back_commission = min(lost_commission, hold.refunded_commission_minor)
            if not (back or back_commission):
                continue
            lost_share, lost_commission = lost_share - back, lost_commission - back_commission
            hold.refunded_seller_minor -= back
            hold.refunded_commission_minor -= back_commission
            hold.save(update_fields=["refunded_seller_minor", "refunded_commission_minor"])
        # Taken from a hold while its dispute was open.
        share = from_held.get(line_id, 0)
        commission = (
            refund_line.dispute_commission_minor
            - refund_line.commission_amount_minor
            + commission_given.get(line_id, 0)
        )
        held_account = seller_account(seller, Kind.DISPUTED, currency)
        for hold in holds:
            back = min(share, hold.refunded_seller_minor)
            back_commission = min(commission, hold.refunded_commission_minor)
            if not (back or back_commission):
                continue
            share, commission = share - back, commission - back_commission
            if hold.dispute.status == Dispute.Status.WON:
                if back:
                    postings.append(Posting(now_at(seller, line_id), -back, line_id))
                continue
            hold.refunded_seller_minor -= back
            hold.refunded_commission_minor -= back_commission
            hold.save(update_fields=["refunded_seller_minor", "refunded_commission_minor"])
            if hold.dispute.status == Dispute.Status.OPEN:
                if back:
                    postings.append(Posting(held_account, -back, line_id))
            else:  # lost: the platform's double repayment is undone
                if back:
                    postings.append(Posting(platform_account(Kind.LOSSES, currency), -back))
                commission_to_losses[line_id] = (
                    commission_to_losses.get(line_id, 0) + back_commission
                )
        if share:
            postings.append(Posting(now_at(seller, line_id), -share, line_id))
    # The service fee's part comes back (the refund still counts as succeeded here).
    postings += service_fee_back_postings(
        order_id=refund.order_id, change_minor=-refund.service_fee_minor
    )
    for entry in original:
        account, line_id = entry.account, entry.order_line_id
        if account.kind == Kind.DISPUTED and line_id is not None:
            continue
        if account.kind in (Kind.SERVICE_FEES, Kind.LOSSES) and line_id is None:
            continue  # the service fee's part, given back above
        amount = -entry.amount_minor
        if account.seller_id is not None and account.kind in (Kind.PENDING, Kind.AVAILABLE):
            assert line_id is not None
            account = now_at(account.seller, line_id)
        elif account.kind == Kind.COMMISSION and line_id in commission_to_losses:
            shifted = commission_to_losses[line_id]
            amount += shifted
            if shifted:
                postings.append(Posting(platform_account(Kind.LOSSES, currency), -shifted))
        if amount:
            postings.append(Posting(account, amount, line_id))
    if postings:
        ledger_post(
            kind=LedgerTransaction.Kind.REFUND_REVERSED,
            idempotency_key=f"refund:{refund.pk}:reversed",
            reference_type="refund",
            reference_id=refund.pk,
            postings=postings,
            description=f"Refund #{refund.pk} of order #{refund.order_id} came back",
        )
    _release_reservation(refund, refund_lines)
    refund.status = Refund.Status.FAILED
    refund.failure_reason = "The refund failed after it had succeeded; the money came back."
    refund.completed_at = timezone.now()
    refund.save(update_fields=["status", "failure_reason", "completed_at"])
    _refresh_statuses(refund.order_id, sorted(released))
    return refund


def _refresh_statuses(order_id: int, seller_order_ids: list[int]) -> None:
    """Refunded, partially refunded or paid again, from the refunds that succeeded.

    A cancelled seller order stays cancelled; a shipped or delivered one keeps its
    fulfilment status (its refunded amount shows a partial refund).
    """
    succeeded = dict(
        RefundLine.objects.filter(
            refund__status=Refund.Status.SUCCEEDED, order_line__seller_order_id__in=seller_order_ids
        )
        .values_list("order_line__seller_order_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    SOStatus = SellerOrder.Status
    for seller_order in SellerOrder.objects.filter(pk__in=seller_order_ids):
        if seller_order.status == SOStatus.CANCELLED:
            continue
        done = succeeded.get(seller_order.pk, 0)
        if done == seller_order.gross_minor:
            new_status = SOStatus.REFUNDED
        elif done and seller_order.status in (SOStatus.PAID, SOStatus.REFUNDED):
            new_status = SOStatus.PARTIALLY_REFUNDED
        elif not done and seller_order.status in (SOStatus.REFUNDED, SOStatus.PARTIALLY_REFUNDED):
            new_status = SOStatus.PAID  # a refund came back
        else:
            continue
        if new_status != seller_order.status:
            SellerOrder.objects.filter(pk=seller_order.pk).update(status=new_status)
    order = Order.objects.get(pk=order_id)
    done = (
        Refund.objects.filter(order_id=order_id, status=Refund.Status.SUCCEEDED).aggregate(
            total=Sum("amount_minor")
        )["total"]
        or 0
    )
    if done == order.total_minor:
        status = Order.Status.REFUNDED
    elif done:
        status = Order.Status.PARTIALLY_REFUNDED
    else:
        status = Order.Status.PAID
    if order.status in (*REFUNDABLE_ORDER_STATUSES, Order.Status.REFUNDED) and (
        order.status != status
    ):
        Order.objects.filter(pk=order_id).update(status=status)


def refund_submit(*, refund: Refund) -> Refund:
    """Ask the processor to give the money back (key ``refund-<id>``; safe to retry).

    The ledger moves when the processor's refund event confirms it
    (``refund_sync``); a refusal now releases the reservation at once.
    """

    refund = Refund.objects.get(pk=refund.pk)
    if refund.status != Refund.Status.PENDING or refund.processor_refund_id:
        return refund
    dispute = order_refund_barred(refund.order_id)
    if dispute is not None:  # disputed since it was created: the processor would refuse
        Refund.objects.filter(pk=refund.pk).update(
            failure_reason=f"The payment was disputed ({dispute.processor_dispute_id})."
        )
        return refund_mark_failed(refund=refund)
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


# --- The operator's refund: a preview first, then one confirmed refund ----------------------

# A seller's earnings transferred by one of these payouts were paid out; in an open
# one they are planned but not sent.
_PAID_OUT = ("transferred", "in_transit", "paid", "sending")
_NOT_SENT = ("awaiting_approval", "held", "scheduled")


@dataclass(frozen=True)
class RefundPreviewLine:
    """What refunding ``amount_minor`` of one line does."""

    line: OrderLine
    amount_minor: int  # the customer gets
    seller_minor: int  # the seller loses
    commission_minor: int  # the platform gives back
    left_after_minor: int  # still refundable on the line afterwards


@dataclass(frozen=True)
class RefundPreviewSeller:
    """One seller's part of a refund, and where the money comes from."""

    seller_order: SellerOrder
    lines: list[RefundPreviewLine]
    payouts: list[Payout]  # payouts that include the refunded lines' earnings
    where: str  # in words: pending, available, or paid out and taken back

    @property
    def amount_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)

    @property
    def seller_minor(self) -> int:
        return sum(line.seller_minor for line in self.lines)

    @property
    def commission_minor(self) -> int:
        return sum(line.commission_minor for line in self.lines)

    @property
    def paid_out(self) -> bool:
        return any(payout.status in _PAID_OUT for payout in self.payouts)


@dataclass(frozen=True)
class RefundPreview:
    """The effect of a refund before it happens (``refund_preview``); nothing is written."""

    order: Order
    sellers: list[RefundPreviewSeller]
    service_fee_minor: int = 0  # the order's service fee given back with these lines

    @property
    def currency(self) -> str:
        return self.order.currency

    @property
    def lines(self) -> list[RefundPreviewLine]:
        return [line for seller in self.sellers for line in seller.lines]

    @property
    def line_amounts(self) -> dict[int, int]:
        return {line.line.pk: line.amount_minor for line in self.lines}

    @property
    def lines_minor(self) -> int:
        return sum(seller.amount_minor for seller in self.sellers)

    @property
    def amount_minor(self) -> int:
        """What the customer gets back: the lines and the service fee's part."""
        return self.lines_minor + self.service_fee_minor

    @property
    def seller_minor(self) -> int:
        return sum(seller.seller_minor for seller in self.sellers)

    @property
    def commission_minor(self) -> int:
        return sum(seller.commission_minor for seller in self.sellers)


def refund_refusal(order: Order) -> None:
    """Raise the clear error for an order that takes no refund at all (not paid,
    cancelled, fully refunded, disputed)."""
    if order.status == Order.Status.CANCELLED:
        raise InvalidState(f"Order #{order.pk} was cancelled: there is no payment to refund.")
    if order.status == Order.Status.REFUNDED:
        raise InvalidState(f"Order #{order.pk} has been refunded in full already.")
    if order.status not in REFUNDABLE_ORDER_STATUSES:
        raise InvalidState(
            f"Order #{order.pk} is {order.get_status_display().lower()}: "
            "only a paid order can be refunded."
        )
    refund_refusal_if_disputed(order.pk)


def refund_preview(*, order: Order, line_amounts: Mapping[int, int]) -> RefundPreview:
    """What refunding ``line_amounts`` (order line id to amount) of the order would do:
    per line and seller, what the customer gets, the seller loses and the commission
    gives back (split as ``refund_create`` splits it), the service fee's part the
    platform gives back with them, and whether the seller was paid
    out already (the refund is then taken back from that payout's transfer, or from
    their next payout). Reads only; raises the error the refund itself would."""
    refund_refusal(order)
    amounts = {line_id: amount for line_id, amount in line_amounts.items() if amount}
    if not amounts:
        raise InvalidRequest("Choose at least one line and an amount to refund.")
    lines = list(
        OrderLine.objects.filter(order=order, pk__in=list(amounts))
        .select_related("seller_order__seller")
        .order_by("seller_order_id", "pk")
    )
    left = [line.gross_minor - line.refunded_minor for line in lines]
    parts = _chosen_parts(lines, left, amounts, order.currency)
    payouts: dict[int, dict[int, Payout]] = {}
    for item in (
        PayoutEntry.objects.filter(
            entry__order_line__in=lines,
            entry__account__kind=Kind.AVAILABLE,
            entry__amount_minor__lt=0,  # the earnings, not a refund's debit
        )
        .exclude(payout__status__in=("failed", "cancelled"))
        .select_related("payout", "entry")
        .order_by("payout_id")
    ):
        assert item.entry.order_line_id is not None
        seller_order_id = next(
            line.seller_order_id for line in lines if line.pk == item.entry.order_line_id
        )
        payouts.setdefault(seller_order_id, {})[item.payout.pk] = item.payout
    by_seller: dict[int, list[RefundPreviewLine]] = {}
    seller_orders: dict[int, SellerOrder] = {}
    for line, line_left, part in zip(lines, left, parts, strict=True):
        if not part:
            continue
        share, commission = refund_split(line, part)
        seller_orders[line.seller_order_id] = line.seller_order
        by_seller.setdefault(line.seller_order_id, []).append(
            RefundPreviewLine(line, part, share, commission, line_left - part)
        )
    sellers = []
    for seller_order_id, preview_lines in by_seller.items():
        seller_order = seller_orders[seller_order_id]
        its_payouts = list(payouts.get(seller_order_id, {}).values())
        sellers.append(
            RefundPreviewSeller(
                seller_order=seller_order,
                lines=preview_lines,
                payouts=its_payouts,
                where=_where_from(seller_order, its_payouts),
            )
        )
    fee_part = order_service_fee_part(order, sum(parts))
    return RefundPreview(order=order, sellers=sellers, service_fee_minor=fee_part)


def _where_from(seller_order: SellerOrder, payouts: list[Payout]) -> str:
    """Where the seller's part of a refund comes from, in words."""
    name = seller_order.seller.display_name
    paid = [payout for payout in payouts if payout.status in _PAID_OUT]
    if paid:
        which = ", ".join(f"#{payout.pk}" for payout in paid)
        if all(payout.method == "bank" for payout in paid):
            return (
                f"{name} was already paid this sale by bank transfer (payout {which}): "
                "the refund becomes a debt deducted from their next payout."
            )
        return (
            f"{name} was already paid out for this sale (payout {which}): the refund is "
            "taken back from that payout's transfer where it still can be (a clawback); "
            "whatever cannot be is deducted from their next payout."
        )
    waiting = [payout for payout in payouts if payout.status in _NOT_SENT]
    if waiting:
        which = ", ".join(f"#{payout.pk}" for payout in waiting)
        return (
            f"Payout {which}, not sent yet, includes this sale: it is checked again before "
            "it is sent and pays no more than what is left; nothing needs taking back."
        )
    if seller_order.released_at:
        return f"Comes out of {name}'s available balance; not paid out yet."
    return f"Comes out of {name}'s pending earnings (still in hold); not paid out yet."


@dataclass(frozen=True)
class OperatorRefund:
    refund: Refund
    created: bool  # False: this confirmation had been used; nothing more was refunded


def order_refund_by_operator(
    *,
    order: Order,
    line_amounts: Mapping[int, int],
    by: User | None,
    reason: str,
    confirmation: str,
    via: str = "admin",
) -> OperatorRefund:
    """An operator refunds exactly ``line_amounts`` (order line id to amount), as the
    preview showed, and the refund is sent to the processor.

    Checked again under the order's lock: a paid, undisputed order, each amount at
    most what is left of its line (else nothing is refunded). ``confirmation`` is the
    confirmation page's one-time key: kept in the order's audit record of the refund,
    so confirming twice (a double submit, a retried request) refunds once and returns
    the first refund.
    """
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("Give a reason for the refund. Nothing was refunded.")
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidRequest(f"Keep the reason under {REASON_MAX_LENGTH} characters.")
    if not confirmation or len(confirmation) > 64:
        raise InvalidRequest("Open the confirmation page again: its key is missing.")
    with transaction.atomic():
        locked = order_lock(order.pk)
        done = _confirmed_refund(locked, confirmation)
        if done is None:
            refund_refusal(locked)
            amounts = {line_id: amount for line_id, amount in line_amounts.items() if amount}
            if not amounts:
                raise InvalidRequest("Choose at least one line and an amount to refund.")
            refund = refund_create(
                order=locked, line_amounts=amounts, reason=reason, requested_by=by
            )

            audit_record(
                target=locked,
                action="refund",
                by=by,
                reason=reason,
                via=via,
                changes={
                    "amount_minor": [None, refund.amount_minor],
                    "refund": [None, refund.pk],
                    "confirmation": [None, confirmation],
                },
            )
    if done is not None:
        return OperatorRefund(refund=done, created=False)
    _submit_or_leave_for_the_sweeper(refund)
    refund.refresh_from_db()
    return OperatorRefund(refund=refund, created=True)


def _confirmed_refund(order: Order, confirmation: str) -> Refund | None:
    """The refund made already with this confirmation key (read under the order's lock)."""

    record = (
        audit_history(order)
        .filter(action="refund", changes__confirmation__1=confirmation)
        .order_by("pk")
        .first()
    )
    if record is None:
        return None
    return Refund.objects.get(pk=record.changes["refund"][1])


def _submit_or_leave_for_the_sweeper(refund: Refund) -> None:
    """Send the (committed) refund to the processor; if it cannot be reached now,
    ``refunds_submit_pending`` sends it later."""

    try:
        refund_submit(refund=refund)
    except ProcessorError:
        logger.warning("Refund #%s could not be sent yet; the sweeper sends it", refund.pk)
