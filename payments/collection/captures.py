"""A payment captured: the order becomes paid and the money is split in the ledger.

One ledger transaction per order (key ``payment:<order id>``): the processor
account receives the total; each line credits its seller's pending account
with the seller's share and the platform's commission account with the
commission; the customer's service fee, when the order has one, goes to the
platform's ``service_fees`` account (an entry of no line). The processor's fee
is a second transaction (``fee:<order id>``), borne by the platform or, per
``PAYMENTS_PROCESSOR_FEE_PAYER``, by the sellers in proportion to their lines'
shares (the service fee's proportion of it is the platform's). Recording either
twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.kernel.money import allocate, is_whole_number
from marketplace.models import Order, OrderLine, SellerOrder
from payments.integrations.announcements import order_paid_announce
from payments.ledger.locks import order_lock
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerTransaction, PaymentAttempt

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind


def _accounts(
    currency: str, platform_kinds: tuple[str, ...], sellers: list[Seller]
) -> dict[tuple[int | None, str], LedgerAccount]:
    """The platform's accounts of ``platform_kinds`` and the sellers' pending accounts,
    keyed by (seller id or None, kind): read in one query, made on first use."""
    found = {
        (account.seller_id, account.kind): account
        for account in LedgerAccount.objects.filter(
            Q(seller__isnull=True, kind__in=platform_kinds)
            | Q(seller__in=[seller.pk for seller in sellers], kind=Kind.PENDING),
            currency=currency,
        )
    }
    for kind in platform_kinds:
        if (None, kind) not in found:
            found[None, kind] = platform_account(kind, currency)
    for seller in sellers:
        if (seller.pk, Kind.PENDING) not in found:
            found[seller.pk, Kind.PENDING] = seller_account(seller, Kind.PENDING, currency)
    return found


def _sellers(lines: list[OrderLine]) -> list[Seller]:
    return list({line.seller_order.seller_id: line.seller_order.seller for line in lines}.values())


def payment_postings(order: Order, lines: list[OrderLine]) -> list[Posting]:
    """The entries of a captured payment: processor +T, sellers and commission -parts,
    the platform's ``service_fees`` -the order's service fee (of no line)."""
    kinds: tuple[str, ...] = (Kind.PROCESSOR, Kind.COMMISSION)
    if order.service_fee_minor:
        kinds = (*kinds, Kind.SERVICE_FEES)
    accounts = _accounts(order.currency, kinds, _sellers(lines))
    commission = accounts[None, Kind.COMMISSION]
    postings = [Posting(accounts[None, Kind.PROCESSOR], order.total_minor)]
    if order.service_fee_minor:
        postings.append(Posting(accounts[None, Kind.SERVICE_FEES], -order.service_fee_minor))
    for line in lines:
        pending = accounts[line.seller_order.seller_id, Kind.PENDING]
        if line.seller_share_minor:
            postings.append(Posting(pending, -line.seller_share_minor, line.pk))
        if line.commission_minor:
            postings.append(Posting(commission, -line.commission_minor, line.pk))
    return postings


def fee_postings(order: Order, lines: list[OrderLine], fee_minor: int) -> list[Posting]:
    """The processor's fee: out of the processor account, charged to whoever bears it.

    When sellers bear it, it is split over the lines in proportion to their
    seller shares and each part names its line, so that the hold release of
    each seller order moves the share net of its fee. A line's part never
    exceeds its seller share (a 99 % commission leaves a share smaller than
    the fee): the platform bears the rest, so no seller owes for a sale. The
    order's service fee weighs in the split as one more share, the platform's:
    sellers never pay the processor's fee on the platform's service fee.
    """
    currency = order.currency
    shares = [line.seller_share_minor for line in lines]
    if settings.PAYMENTS_PROCESSOR_FEE_PAYER == "sellers" and sum(shares):
        allocated = allocate(fee_minor, [*shares, order.service_fee_minor])[: len(shares)]
        parts = [min(part, share) for part, share in zip(allocated, shares, strict=True)]
        charged = [line for line, part in zip(lines, parts, strict=True) if part]
        platform_kinds: tuple[str, ...] = (Kind.PROCESSOR, Kind.PROCESSOR_FEES)
        accounts = _accounts(currency, platform_kinds, _sellers(charged))
        postings = [Posting(accounts[None, Kind.PROCESSOR], -fee_minor)]
        for line, part in zip(lines, parts, strict=True):
            if part:
                pending = accounts[line.seller_order.seller_id, Kind.PENDING]
                postings.append(Posting(pending, part, line.pk))
        if fee_minor > sum(parts):
            postings.append(Posting(accounts[None, Kind.PROCESSOR_FEES], fee_minor - sum(parts)))
        return postings
    accounts = _accounts(currency, (Kind.PROCESSOR, Kind.PROCESSOR_FEES), [])
    return [
        Posting(accounts[None, Kind.PROCESSOR], -fee_minor),
        Posting(accounts[None, Kind.PROCESSOR_FEES], fee_minor),
    ]


@transaction.atomic
def order_processor_fee_recorded(*, order: Order, fee_minor: int) -> LedgerTransaction | None:
    """Record the processor's fee for a captured order, once (key ``fee:<order id>``).

    The fee may be known at capture or later (from the processor's balance
    transaction); a second call returns the fee already posted.
    """
    order = order_lock(order.pk)
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
    order = order_lock(order.pk)
    key = f"payment:{order.pk}"
    txn: LedgerTransaction | None = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if txn is None:
        if order.status != Order.Status.AWAITING_PAYMENT:
            raise InvalidState(
                f"Order #{order.pk} is {order.get_status_display().lower()}, not awaiting payment."
            )
        order.status = Order.Status.PAID
        order.paid_at = captured_at or timezone.now()
        order.save(update_fields=["status", "paid_at"])
        # Seller orders before the ledger accounts: the lock order of payments.ledger.locks.
        SellerOrder.objects.filter(order=order, status=SellerOrder.Status.PENDING).update(
            status=SellerOrder.Status.PAID
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

        order_paid_announce(order=order)
    if processor_fee_minor:
        order_processor_fee_recorded(order=order, fee_minor=processor_fee_minor)
    return txn


def duplicate_payment_fee_recorded(*, attempt: PaymentAttempt, fee_minor: int) -> None:
    """A payment the order did not take (a second payment, or one after the order
    expired) is refunded whole, but the processor keeps its fee: the platform bears
    it, once (key ``fee:attempt:<attempt id>``). No seller is involved."""
    if not fee_minor:
        return
    currency = attempt.currency
    ledger_post(
        kind=TxnKind.PROCESSOR_FEE,
        idempotency_key=f"fee:attempt:{attempt.pk}",
        reference_type="payment_attempt",
        reference_id=attempt.pk,
        postings=[
            Posting(platform_account(Kind.PROCESSOR, currency), -fee_minor),
            Posting(platform_account(Kind.PROCESSOR_FEES, currency), fee_minor),
        ],
        description=f"Processor fee of a refunded duplicate payment of order #{attempt.order_id}",
    )
