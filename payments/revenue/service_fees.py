"""The customer's service fee: what the platform adds to an order at checkout.

Rule: the fee of an order is that of the ``ServiceFee`` active at the order's
moment for the order's currency (the latest started; a fee in another
currency never applies): its percentage of the lines' total, rounded half-up
at the minor unit, plus its fixed fee, capped at one minor unit less than
the lines' total (the fee is never as much as the goods, and the order's
constraint ``service_fee < total`` always holds). The platform keeps it: it
is posted to the platform's ``service_fees`` account, tied to no order line
(payments/collection/captures.py).

Refunds give it back pro rata, cumulatively (``service_fee_refund_part``):
after a refund, the fee refunded is ``round_half_up(fee * lines refunded /
lines gross)`` of what was refunded of the lines so far, so refunding every
line refunds the whole fee exactly and the fee refunded is never more than
the fee.

A lost dispute takes its fee part from the platform too. Refunds and lost disputes
together can give the customer more of the fee than they paid (a refund pending when
a dispute of the whole payment opened, both completed): what goes beyond the fee was
repaid twice, and the platform bears it as a loss (``losses``), never as negative
service-fee revenue (``service_fee_back_postings``).
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Q, Subquery, Sum
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from marketplace.kernel.money import is_whole_number, percentage
from marketplace.models import Order
from payments.ledger.audit import audited_save
from payments.ledger.posting import Posting, platform_account
from payments.models import Dispute, LedgerAccount, Refund, ServiceFee


def service_fee_save(
    *, fee: ServiceFee, by: User | None = None, reason: str = "", via: str = "code"
) -> ServiceFee:
    """Validate and save a service fee, audited: a supported currency, a percentage
    from 0 to 100 %, a fixed fee of whole minor units not below zero, at least one of
    them above zero, and an end after the start. Else a ``ValidationError`` naming the
    field, and nothing is saved. Orders keep the fee they were placed with."""

    errors: dict[str, str] = {}
    if fee.currency not in SUPPORTED_CURRENCIES:
        errors["currency"] = f"{fee.currency or 'No currency'} is not a supported currency."
    if not is_whole_number(fee.percentage_bps) or not 0 <= fee.percentage_bps <= 10_000:
        errors["percentage_bps"] = "The percentage is from 0 to 100%."
    if not is_whole_number(fee.fixed_fee_minor) or fee.fixed_fee_minor < 0:
        errors["fixed_fee_minor"] = "The fixed fee is a whole amount, not below zero."
    if not errors and not (fee.percentage_bps or fee.fixed_fee_minor):
        errors["__all__"] = "Give a percentage, a fixed fee or both: this fee would be zero."
    if fee.active_until is not None and fee.active_until <= fee.active_from:
        errors["active_until"] = "The fee must end after it starts."
    if errors:
        raise ValidationError(errors)
    audited_save(instance=fee, by=by, reason=reason, via=via)
    return fee


def service_fee_active(*, currency: str, at: datetime | None = None) -> ServiceFee | None:
    """The fee in force for ``currency`` at ``at`` (the latest started), or None."""
    at = at or timezone.now()
    return (
        ServiceFee.objects.filter(
            Q(active_until__isnull=True) | Q(active_until__gt=at),
            currency=currency,
            active_from__lte=at,
        )
        .order_by("-active_from", "-pk")
        .first()
    )


def service_fee_amount(fee: ServiceFee | None, lines_total_minor: int) -> int:
    """The fee on a lines' total: percentage half-up plus fixed, below the lines' total."""
    if fee is None or lines_total_minor <= 0:
        return 0
    amount = percentage(lines_total_minor, fee.percentage_bps) + fee.fixed_fee_minor
    return max(0, min(amount, lines_total_minor - 1))


def service_fee_for(
    *, currency: str, lines_total_minor: int, at: datetime | None = None
) -> tuple[ServiceFee | None, int]:
    """(the fee in force, its amount) for an order of ``lines_total_minor`` (module
    docstring); (None, 0) when no fee applies to the currency."""
    fee = service_fee_active(currency=currency, at=at)
    amount = service_fee_amount(fee, lines_total_minor)
    return (fee if amount else None), amount


def _half_up_ratio(amount: int, numerator: int, denominator: int) -> int:
    """``amount * numerator / denominator`` rounded half-up (all not negative)."""
    return (2 * amount * numerator + denominator) // (2 * denominator)


def service_fee_refund_part(
    *,
    fee_minor: int,
    fee_refunded_minor: int,
    lines_gross_minor: int,
    lines_refunded_after_minor: int,
) -> int:
    """The fee part of a refund that brings the lines refunded (or being refunded) to
    ``lines_refunded_after_minor``: the cumulative pro-rata fee then, less what was
    refunded of the fee already, never below zero (module docstring)."""
    if fee_minor <= 0 or lines_gross_minor <= 0:
        return 0
    if lines_refunded_after_minor >= lines_gross_minor:
        target = fee_minor
    else:
        target = min(
            fee_minor, _half_up_ratio(fee_minor, lines_refunded_after_minor, lines_gross_minor)
        )
    return max(0, target - fee_refunded_minor)


def service_fee_annotations(currency_field: str, at: datetime | None = None) -> dict[str, Subquery]:
    """Annotations that bring, on each row of a query, the service fee in force now for
    the currency in ``currency_field`` (its id, percentage and fixed fee): a cart reads
    its fee in the same statement as its items (``service_fee_from_row``)."""
    at = at or timezone.now()
    active = ServiceFee.objects.filter(
        Q(active_until__isnull=True) | Q(active_until__gt=at),
        currency=OuterRef(currency_field),
        active_from__lte=at,
    ).order_by("-active_from", "-pk")
    return {
        f"service_fee_{name}": Subquery(active.values(name)[:1])
        for name in ("id", "percentage_bps", "fixed_fee_minor")
    }


def service_fee_from_row(row: object, currency: str) -> ServiceFee | None:
    """The fee a row annotated by ``service_fee_annotations`` carries (not saved)."""
    fee_id = getattr(row, "service_fee_id", None)
    if fee_id is None:
        return None
    return ServiceFee(
        pk=fee_id,
        currency=currency,
        percentage_bps=getattr(row, "service_fee_percentage_bps", 0) or 0,
        fixed_fee_minor=getattr(row, "service_fee_fixed_fee_minor", 0) or 0,
    )


def service_fee_repaid_twice(*, fee_minor: int, given_back_minor: int) -> int:
    """What refunds and lost disputes gave back of a fee beyond the fee itself."""
    return max(0, given_back_minor - fee_minor)


def service_fee_back_postings(*, order_id: int, change_minor: int) -> list[Posting]:
    """The platform's postings when an order's fee given back to the customer changes by
    ``change_minor`` (a refund's fee part succeeding or a dispute's lost: positive; a
    succeeded refund reversed: negative), read against what succeeded refunds and lost
    disputes gave back before the change (the caller holds the order's lock and has not
    yet written the change's status): ``service_fees`` moves by the change less what of
    it is repaid twice, ``losses`` by that part (module docstring)."""

    if not change_minor:
        return []
    fee, currency = Order.objects.values_list("service_fee_minor", "currency").get(pk=order_id)
    refunded = Refund.objects.filter(order_id=order_id, status=Refund.Status.SUCCEEDED).aggregate(
        total=Sum("service_fee_minor")
    )["total"]
    lost = Dispute.objects.filter(order_id=order_id, status=Dispute.Status.LOST).aggregate(
        total=Sum("service_fee_minor")
    )["total"]
    before = (refunded or 0) + (lost or 0)
    twice = service_fee_repaid_twice(
        fee_minor=fee, given_back_minor=before + change_minor
    ) - service_fee_repaid_twice(fee_minor=fee, given_back_minor=before)
    Kind = LedgerAccount.Kind
    postings = []
    if change_minor != twice:
        kept_back = change_minor - twice
        postings.append(Posting(platform_account(Kind.SERVICE_FEES, currency), kept_back))
    if twice:
        postings.append(Posting(platform_account(Kind.LOSSES, currency), twice))
    return postings
