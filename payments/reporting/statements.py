"""A seller's statement for a period: what they were owed at the start and the end, and
every movement in between, read from the ledger.

The balance is everything the platform owes the seller: pending, available,
in transit and held for disputes. Moves between those accounts (a hold
release, a payout sent or failed, a dispute opened or won) do not change it.
What does, by transaction kind:

- ``earnings``: the seller's share of sales (captured payments);
- ``refunds``: the seller's part of refunds;
- ``fees``: processor fees charged to the seller;
- ``disputes``: shares lost in disputes;
- ``payouts``: payouts paid to the seller's bank;
- ``plan_fees``: their plan's monthly fees, less the credits of plan changes;
- ``listing_fees``: fees for listing and renewing products;
- ``adjustments``: anything else an operator posted.

opening + earnings − refunds − fees − disputes − payouts − plan_fees − listing_fees
+ adjustments = closing, always, because all of them come from the same entries.
``fee_items`` lists the plan and listing fees one row per description ("Plan fee —
Pro, December 2026", "Plan fee credited — Basic, December 2026", "Listing fee —
Lamp"), each signed as it moved the balance (a fee negative, a credit positive). ``sales`` and
``commission`` (what the sold lines cost the customers and what the platform
kept of them) come from the lines of those captures; ``commission_tax`` is the
part of the commission that is tax, where ``PAYMENTS_COMMISSION_TAX_BPS`` is set
(the commission is tax-inclusive; the tax is shown, not charged on top).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum

from accounts.models import Seller
from marketplace.kernel.spreadsheets import spreadsheet_text
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction
from payments.reporting.periods import day_start

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
OWED = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)
MOVEMENT = {
    TxnKind.PAYMENT_CAPTURED: "earnings",
    TxnKind.REFUND: "refunds",
    TxnKind.PROCESSOR_FEE: "fees",
    TxnKind.DISPUTE_LOST: "disputes",
    TxnKind.PAYOUT_PAID: "payouts",
    TxnKind.PAYOUT_RETURNED: "payouts",  # less paid out: the bank sent it back
    TxnKind.PLAN_FEE: "plan_fees",
    TxnKind.PLAN_FEE_CREDIT: "plan_fees",
    TxnKind.LISTING_FEE: "listing_fees",
}
SELLER_FEE_KINDS = (TxnKind.PLAN_FEE, TxnKind.PLAN_FEE_CREDIT, TxnKind.LISTING_FEE)


@dataclass(frozen=True)
class Statement:
    seller: Seller
    currency: str
    start: date
    end: date  # included
    opening: int
    sales: int
    commission: int
    commission_tax: int
    earnings: int
    refunds: int
    fees: int
    disputes: int
    payouts: int
    adjustments: int
    closing: int
    plan_fees: int = 0
    listing_fees: int = 0
    fee_items: tuple[tuple[str, int], ...] = ()


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of ``YYYY-MM``; ValueError if it is not a month."""
    first = datetime.strptime(month, "%Y-%m").date()
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


def _tax_included(amount: int, basis_points: int) -> int:
    if not basis_points:
        return 0
    exact = Decimal(amount) * basis_points / (10_000 + basis_points)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def seller_statement(*, seller: Seller, currency: str, start: date, end: date) -> Statement:
    """The seller's statement for the days ``start`` to ``end`` (both included)."""
    if start > end:
        raise ValueError("The statement must start before it ends.")
    since, until = day_start(start), day_start(end + timedelta(days=1))
    owed = LedgerEntry.objects.filter(
        account__seller=seller, account__currency=currency, account__kind__in=OWED
    )
    opening = -(owed.filter(created_at__lt=since).aggregate(t=Sum("amount_minor"))["t"] or 0)
    in_period = owed.filter(created_at__gte=since, created_at__lt=until)
    by_kind = dict(
        in_period.values_list("transaction__kind")
        .annotate(total=Sum("amount_minor"))
        .order_by()
        .values_list("transaction__kind", "total")
    )
    moved = {name: 0 for name in (*MOVEMENT.values(), "adjustments")}
    for kind, total in by_kind.items():
        moved[MOVEMENT.get(kind, "adjustments")] += -int(total or 0)
    # One pending entry per line of each capture names its line.
    sold = in_period.filter(
        transaction__kind=TxnKind.PAYMENT_CAPTURED, account__kind=Kind.PENDING
    ).aggregate(
        sales=Sum("order_line__gross_minor"), commission=Sum("order_line__commission_minor")
    )
    sales, commission = int(sold["sales"] or 0), int(sold["commission"] or 0)
    fee_items = tuple(
        (str(description), -int(total or 0))
        for description, total in in_period.filter(transaction_kind__in=SELLER_FEE_KINDS)
        .values_list("transaction__description")
        .annotate(total=Sum("amount_minor"))
        .order_by("transaction__description")
        .values_list("transaction__description", "total")
        if total
    )
    closing = opening + sum(moved.values())
    return Statement(
        seller=seller,
        currency=currency,
        start=start,
        end=end,
        opening=opening,
        sales=sales,
        commission=commission,
        commission_tax=_tax_included(commission, settings.PAYMENTS_COMMISSION_TAX_BPS),
        earnings=moved["earnings"],
        refunds=-moved["refunds"],
        fees=-moved["fees"],
        disputes=-moved["disputes"],
        payouts=-moved["payouts"],
        adjustments=moved["adjustments"],
        closing=closing,
        plan_fees=-moved["plan_fees"],
        listing_fees=-moved["listing_fees"],
        fee_items=fee_items,
    )


CSV_FIELDS = [f.name for f in fields(Statement) if f.name not in ("seller", "fee_items")]


def statement_csv(statement: Statement) -> str:
    """The statement as CSV: one header row and one row, amounts in minor units."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seller", *CSV_FIELDS])
    writer.writerow(
        [
            spreadsheet_text(statement.seller.slug),
            *(getattr(statement, name) for name in CSV_FIELDS),
        ]
    )
    return out.getvalue()
