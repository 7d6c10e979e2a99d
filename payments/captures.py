"""A payment captured: the order becomes paid and the money is split in the ledger.

One ledger transaction per order (key ``payment:<order id>``): the processor
account receives the total; each line credits its seller's pending account
with the seller's share and the platform's commission account with the
commission. The processor's fee is a second transaction (``fee:<order id>``),
borne by the platform or, per ``PAYMENTS_PROCESSOR_FEE_PAYER``, by the sellers
in proportion to their lines' shares. Recording either twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.errors import InvalidRequest, InvalidState
from marketplace.models import Order, OrderLine, SellerOrder
from payments.ledger import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerTransaction
from payments.money import allocate, is_whole_number

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


def payment_postings(order: Order, lines: list[OrderLine]) -> list[Posting]:
    """The entries of a captured payment: processor +T, sellers and commission -parts."""
    currency = order.currency
    commission = platform_account(Kind.COMMISSION, currency)
    postings = [Posting(platform_account(Kind.PROCESSOR, currency), order.total_minor)]
    pending_accounts: dict[int, LedgerAccount] = {}
    for line in lines:
        seller = line.seller_order.seller
        if seller.pk not in pending_accounts:
            pending_accounts[seller.pk] = seller_account(seller, Kind.PENDING, currency)
        if line.seller_share_minor:
            postings.append(Posting(pending_accounts[seller.pk], -line.seller_share_minor, line.pk))
        if line.commission_minor:
            postings.append(Posting(commission, -line.commission_minor, line.pk))
    return postings


def fee_postings(order: Order, lines: list[OrderLine], fee_minor: int) -> list[Posting]:
    """The processor's fee: out of the processor account, charged to whoever bears it.

    When sellers bear it, it is split over the lines in proportion to their
    seller shares and each part names its line, so that the hold release of
    each seller order moves the share net of its fee.
    """
    currency = order.currency
    postings = [Posting(platform_account(Kind.PROCESSOR, currency), -fee_minor)]
    shares = [line.seller_share_minor for line in lines]
    if settings.PAYMENTS_PROCESSOR_FEE_PAYER == "sellers" and sum(shares):
        pending: dict[int, LedgerAccount] = {}
        for line, part in zip(lines, allocate(fee_minor, shares), strict=True):
            if part:
                seller = line.seller_order.seller
                if seller.pk not in pending:
                    pending[seller.pk] = seller_account(seller, Kind.PENDING, currency)
                postings.append(Posting(pending[seller.pk], part, line.pk))
        return postings
    postings.append(Posting(platform_account(Kind.PROCESSOR_FEES, currency), fee_minor))
    return postings


@transaction.atomic
def order_processor_fee_recorded(*, order: Order, fee_minor: int) -> LedgerTransaction | None:
    """Record the processor's fee for a captured order, once (key ``fee:<order id>``).

    The fee may be known at capture or later (from the processor's balance
    transaction); a second call returns the fee already posted.
    """
    order = Order.objects.select_for_update().get(pk=order.pk)
    key = f"fee:{order.pk}"
    existing: LedgerTransaction | None = LedgerTransaction.objects.filter(
        idempotency_key=key
    ).first()
    if existing is not None:
        return existing
    if order.paid_at is None:
        raise InvalidState("A fee is recorded for a captured payment only.")
    if not is_whole_number(fee_minor) or not 0 <= fee_minor <= order.total_minor:
        raise InvalidRequest(
            "The processor fee is a whole number between zero and the order total."
        )
    if fee_minor == 0:
        return None
    lines = list(order.lines.select_related("seller_order__seller").order_by("pk"))
    return ledger_post(
        kind=TxnKind.PROCESSOR_FEE,
        idempotency_key=key,
        reference_type="order",
        reference_id=order.pk,
        postings=fee_postings(order, lines, fee_minor),
        description=f"Processor fee for order #{order.pk}",
    )


@transaction.atomic
def order_payment_captured(
    *, order: Order, processor_fee_minor: int = 0, captured_at: datetime | None = None
) -> LedgerTransaction:
    """Record that the processor captured the order's payment (once, whatever the retries).

    The fee, when given, is recorded too (``order_processor_fee_recorded``),
    also on a retry whose first attempt had none.
    """
    order = Order.objects.select_for_update().get(pk=order.pk)
    key = f"payment:{order.pk}"
    txn: LedgerTransaction | None = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if txn is None:
        if order.status != Order.Status.AWAITING_PAYMENT:
            raise InvalidState(
                f"Order #{order.pk} is {order.get_status_display().lower()}, not awaiting payment."
            )
        lines = list(order.lines.select_related("seller_order__seller").order_by("pk"))
        txn = ledger_post(
            kind=TxnKind.PAYMENT_CAPTURED,
            idempotency_key=key,
            reference_type="order",
            reference_id=order.pk,
            postings=payment_postings(order, lines),
            description=f"Payment for order #{order.pk}",
        )
        order.status = Order.Status.PAID
        order.paid_at = captured_at or timezone.now()
        order.save(update_fields=["status", "paid_at"])
        SellerOrder.objects.filter(order=order, status=SellerOrder.Status.PENDING).update(
            status=SellerOrder.Status.PAID
        )
        from payments.integration_events import order_paid_announce

        order_paid_announce(order=order)
    if processor_fee_minor:
        order_processor_fee_recorded(order=order, fee_minor=processor_fee_minor)
    return txn
