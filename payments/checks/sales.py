"""Invariants of captured payments, refunds, disputes, processor fees and customer
service fees, proved from the business tables and the ledger together (checks 9 to 11, and 18)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from marketplace.models import Order
from payments.checks.report import sums
from payments.models import Dispute, LedgerEntry, LedgerTransaction, PaymentAttempt, Refund
from payments.processors.local import processing_fee

TxnKind = LedgerTransaction.Kind
# A refund that went (or may go) to the customer.
LIVE_REFUNDS = (Refund.Status.SUCCEEDED, Refund.Status.PENDING)


def _on_the_captured_payment(prefix: str = "") -> Q:
    """Disputes of the order's captured payment, not of a duplicate payment that was
    refunded on its own (a dispute names its payment attempt when it is known)."""
    return Q(**{f"{prefix}payment_attempt__isnull": True}) | Q(
        **{f"{prefix}payment_attempt__status": PaymentAttempt.Status.SUCCEEDED}
    )


def check_given_back(problems: list[str]) -> None:
    """9. Per order with a captured payment: succeeded refunds plus what lost disputes
    of that payment held (what its lines took: the disputed amount, capped by what the
    payment still held when it opened) are at most the total, plus what the platform
    booked as its own loss on them (its
    ``losses`` account, in those refunds' and disputes' transactions: a customer
    repaid twice because a refund already sent succeeded while the dispute was open)."""
    refunded = sums(Refund.objects.filter(status=Refund.Status.SUCCEEDED), "order_id")
    lost_disputes = list(
        Dispute.objects.filter(_on_the_captured_payment(), status=Dispute.Status.LOST)
        .values_list("pk", "order_id")
        .annotate(held=Coalesce(Sum("lines__amount_minor"), 0))
        .order_by()
    )
    if not refunded and not lost_disputes:
        return
    lost: dict[int, int] = defaultdict(int)
    for _, order_id, amount in lost_disputes:
        lost[order_id] += amount
    for order_id, fee_part in Dispute.objects.filter(
        _on_the_captured_payment(), status=Dispute.Status.LOST, service_fee_minor__gt=0
    ).values_list("order_id", "service_fee_minor"):
        lost[order_id] += fee_part  # the service fee's part, held beside the lines
    booked = _losses_by_order({pk for pk, _, _ in lost_disputes})
    suspects = set(refunded) | set(lost)
    paid = Order.objects.filter(paid_at__isnull=False).values_list("pk", "total_minor", "currency")
    for order_id, total, currency in paid.iterator():
        if order_id not in suspects:
            continue
        given_back = refunded.get(order_id, 0) + lost.get(order_id, 0)
        if given_back > total + booked.get(order_id, 0):
            problems.append(
                f"Order #{order_id}: captured {total} {currency}, but succeeded refunds "
                f"({refunded.get(order_id, 0)}) and lost disputes ({lost.get(order_id, 0)}) "
                f"gave back {given_back}"
                + (
                    f", and the platform booked only {booked[order_id]} as lost."
                    if booked.get(order_id)
                    else "."
                )
            )


def _losses_by_order(disputes: set[int]) -> dict[int, int]:
    """What the platform's ``losses`` account took in refund transactions and in the
    transactions of these disputes, per order (two queries; losses are rare)."""
    rows = (
        LedgerEntry.objects.filter(
            account__seller__isnull=True,
            account__kind="losses",
            transaction__reference_type__in=("refund", "dispute"),
        )
        .values_list("transaction__reference_type", "transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    by_refund: dict[int, int] = defaultdict(int)
    by_dispute: dict[int, int] = defaultdict(int)
    for reference_type, reference_id, total in rows:
        if not str(reference_id).isdigit():
            continue
        target = by_refund if reference_type == "refund" else by_dispute
        target[int(reference_id)] += int(total)
    booked: dict[int, int] = defaultdict(int)
    if by_refund:
        for refund_id, order_id in Refund.objects.filter(pk__in=list(by_refund)).values_list(
            "pk", "order_id"
        ):
            booked[order_id] += by_refund[refund_id]
    if by_dispute:
        for dispute_id, order_id in Dispute.objects.filter(
            pk__in=[pk for pk in by_dispute if pk in disputes]
        ).values_list("pk", "order_id"):
            booked[order_id] += by_dispute[dispute_id]
    return booked


def check_refunds_under_dispute(problems: list[str]) -> None:
    """10. No refund (succeeded or pending) was created on an order after a dispute
    of its payment opened, while that dispute is open or lost: the card network
    decides what the customer gets back."""
    barred = (
        Refund.objects.filter(
            _on_the_captured_payment("order__disputes__"),
            status__in=LIVE_REFUNDS,
            order__disputes__status__in=Dispute.BARS_REFUNDS,
            order__disputes__opened_at__lt=F("created_at"),
        )
        .values_list(
            "pk",
            "order_id",
            "amount_minor",
            "status",
            "created_at",
            "order__disputes__pk",
            "order__disputes__status",
            "order__disputes__amount_minor",
            "order__disputes__opened_at",
        )
        .order_by("pk", "order__disputes__pk")
    )
    for (
        refund_id,
        order_id,
        amount,
        status,
        created,
        dispute_id,
        d_status,
        d_amount,
        opened,
    ) in barred.iterator():
        problems.append(
            f"Refund #{refund_id} of order #{order_id} ({status}, {amount}) was created at "
            f"{created:%Y-%m-%d %H:%M:%S} while dispute #{dispute_id} ({d_status}, {d_amount}, "
            f"opened {opened:%Y-%m-%d %H:%M:%S}) was on the payment."
        )


def check_local_fees(problems: list[str]) -> None:
    """11. Every payment captured through the local processor has its fee posted
    (``fee:<order id>``) for what the processor keeps: 2.9% + 30, at most the amount,
    so never 0 for a payment above 0. Other processors may report no fee (then none
    is posted), so only their fee's amount is not checked here."""
    posted = {
        int(order_id): -int(total)
        for order_id, total in LedgerEntry.objects.filter(
            transaction__kind=TxnKind.PROCESSOR_FEE,
            transaction__reference_type="order",  # not a duplicate payment's fee
            account__seller__isnull=True,
            account__kind="processor",
        )
        .values_list("transaction__reference_id")
        .annotate(total=Sum("amount_minor"))
        .order_by()
    }
    local = PaymentAttempt.objects.filter(
        processor="local", status=PaymentAttempt.Status.SUCCEEDED, order__paid_at__isnull=False
    ).values_list("pk", "order_id", "amount_minor")
    for attempt_id, order_id, amount in local.iterator():
        expected = processing_fee(amount)
        got = posted.get(order_id)
        if got is None and expected:
            problems.append(
                f"Order #{order_id}: payment attempt #{attempt_id} of {amount} was captured by "
                f"the local processor, which kept a fee of {expected}; no fee:{order_id} "
                "transaction was posted."
            )
        elif got is not None and got != expected:
            problems.append(
                f"Order #{order_id}: the local processor kept a fee of {expected} on payment "
                f"attempt #{attempt_id}; fee:{order_id} posted {got}."
            )


def check_service_fees(problems: list[str]) -> None:
    """18. The customers' service fees (payments/revenue/service_fees.py), per order: the
    ``service_fees`` account took the order's fee with its captured payment; what it
    holds of the order (the fee posted, less what refunds gave back net of their
    reversals, less what lost disputes took) equals the order's fee less the fee
    parts of its succeeded refunds and of its lost disputes, or nothing when those
    gave back more than the fee (repaid twice: ``losses``); and the order's
    ``service_fee_refunded_minor`` counter equals the fee parts of its refunds that
    did not fail. A fixed number of queries (five)."""
    rows = (
        LedgerEntry.objects.filter(account__seller__isnull=True, account__kind="service_fees")
        .values_list(
            "transaction__kind", "transaction__reference_type", "transaction__reference_id"
        )
        .annotate(total=Sum("amount_minor"))
        .order_by()
    )
    captured: dict[int, int] = defaultdict(int)
    by_refund: dict[int, int] = defaultdict(int)
    by_dispute: dict[int, int] = defaultdict(int)
    for kind, reference_type, reference_id, total in rows:
        if not str(reference_id).isdigit():
            continue
        if kind == TxnKind.PAYMENT_CAPTURED and reference_type == "order":
            captured[int(reference_id)] += -int(total)
        elif reference_type == "refund":
            by_refund[int(reference_id)] += int(total)
        elif reference_type == "dispute":
            by_dispute[int(reference_id)] += int(total)
    given_back: dict[int, int] = defaultdict(int)  # per order, net in the ledger
    for refund_id, order_id in Refund.objects.filter(pk__in=list(by_refund)).values_list(
        "pk", "order_id"
    ):
        given_back[order_id] += by_refund[refund_id]
    for dispute_id, order_id in Dispute.objects.filter(pk__in=list(by_dispute)).values_list(
        "pk", "order_id"
    ):
        given_back[order_id] += by_dispute[dispute_id]
    refunded = sums(
        Refund.objects.filter(status=Refund.Status.SUCCEEDED), "order_id", "service_fee_minor"
    )
    reserved = sums(
        Refund.objects.exclude(status=Refund.Status.FAILED), "order_id", "service_fee_minor"
    )
    lost = sums(Dispute.objects.filter(status=Dispute.Status.LOST), "order_id", "service_fee_minor")
    orders = Order.objects.filter(
        Q(service_fee_minor__gt=0) | Q(service_fee_refunded_minor__gt=0)
    ).values_list("pk", "paid_at", "service_fee_minor", "service_fee_refunded_minor")
    seen = set()
    for order_id, paid_at, fee, counter in orders.iterator():
        seen.add(order_id)
        if counter != reserved.get(order_id, 0):
            problems.append(
                f"Order #{order_id}: service fee refunded {counter}, its refunds that did not "
                f"fail say {reserved.get(order_id, 0)}."
            )
        if paid_at is None:
            if captured.get(order_id):
                problems.append(f"Order #{order_id} is not paid but its service fee was posted.")
            continue
        if captured.get(order_id, 0) != fee:
            problems.append(
                f"Order #{order_id}: service fee {fee}, posted with its payment "
                f"{captured.get(order_id, 0)}."
            )
        held = captured.get(order_id, 0) - given_back.get(order_id, 0)
        # Beyond the fee, what refunds and lost disputes gave back was repaid twice: a
        # loss of the platform's (``losses``), not negative service-fee revenue.
        expected = max(0, fee - refunded.get(order_id, 0) - lost.get(order_id, 0))
        if held != expected:
            problems.append(
                f"Order #{order_id}: the service fees account holds {held} of its fee; "
                f"expected {expected} (fee {fee}, refunded {refunded.get(order_id, 0)}, "
                f"lost in disputes {lost.get(order_id, 0)})."
            )
    for order_id in sorted(set(captured) - seen):
        problems.append(f"Order #{order_id} has no service fee but one was posted with it.")
