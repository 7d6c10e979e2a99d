"""Platform revenue per period and currency, read from the ledger.

For each period (day, week or month, in the site's time zone) and currency:

- ``sales``: what customers paid (captured payments);
- ``refunds``: what was given back to customers (succeeded refunds);
- ``commission``: commission earned on those sales, less commission given
  back with refunds and lost with disputes (the commission account's net);
- ``processor_fees``: processor fees the platform paid;
- ``payouts``: what reached sellers' banks (processor and manual payouts paid);
- ``plan_fees``: sellers' plan fees earned, less credits of plan changes;
- ``listing_fees``: listing fees earned;
- ``service_fees``: customers' service fees earned, less what refunds gave back;
- ``net``: commission and the three fees, less processor fees: what the platform made.

One query per report, whatever the number of entries (grouped in the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from django.db.models import Q, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek

from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
PAYOUT_CASH_KINDS = (TxnKind.PAYOUT_TRANSFERRED, TxnKind.PAYOUT_PAID, TxnKind.TRANSFER_REVERSED)
Period = Literal["day", "week", "month"]
TRUNC = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


@dataclass(frozen=True)
class RevenueRow:
    period: date
    currency: str
    sales: int
    refunds: int
    commission: int
    processor_fees: int
    payouts: int = 0
    plan_fees: int = 0
    listing_fees: int = 0
    service_fees: int = 0

    @property
    def net(self) -> int:
        return (
            self.commission
            + self.plan_fees
            + self.listing_fees
            + self.service_fees
            - self.processor_fees
        )


def revenue_report(
    *, period: Period = "day", start: datetime | None = None, end: datetime | None = None
) -> list[RevenueRow]:
    """Revenue rows, oldest period first, for entries in [start, end)."""
    entries = LedgerEntry.objects.filter(account__seller__isnull=True)
    if start is not None:
        entries = entries.filter(created_at__gte=start)
    if end is not None:
        entries = entries.filter(created_at__lt=end)
    processor = Q(account__kind=Kind.PROCESSOR)
    rows = (
        entries.annotate(bucket=TRUNC[period]("created_at"))
        .values("bucket", "currency")
        .annotate(
            sales=Sum(
                "amount_minor", filter=processor & Q(transaction__kind=TxnKind.PAYMENT_CAPTURED)
            ),
            refunds=Sum("amount_minor", filter=processor & Q(transaction__kind=TxnKind.REFUND)),
            commission=Sum("amount_minor", filter=Q(account__kind=Kind.COMMISSION)),
            fees=Sum("amount_minor", filter=Q(account__kind=Kind.PROCESSOR_FEES)),
            plan_fees=Sum("amount_minor", filter=Q(account__kind=Kind.PLAN_FEES)),
            listing_fees=Sum("amount_minor", filter=Q(account__kind=Kind.LISTING_FEES)),
            service_fees=Sum("amount_minor", filter=Q(account__kind=Kind.SERVICE_FEES)),
            payouts=Sum(
                "amount_minor",
                # Processor payouts leave the platform's cash when transferred (less what
                # clawbacks bring back); manual ones when paid from the bank. (Before
                # transfers were recorded, processor payouts left it when paid.)
                filter=Q(account__kind__in=(Kind.PROCESSOR, Kind.BANK))
                & Q(transaction__kind__in=PAYOUT_CASH_KINDS),
            ),
        )
        .order_by("bucket", "currency")
    )
    return [
        RevenueRow(
            period=row["bucket"].date() if isinstance(row["bucket"], datetime) else row["bucket"],
            currency=row["currency"],
            sales=row["sales"] or 0,
            refunds=-(row["refunds"] or 0),
            commission=-(row["commission"] or 0),
            processor_fees=row["fees"] or 0,
            payouts=-(row["payouts"] or 0),
            plan_fees=-(row["plan_fees"] or 0),
            listing_fees=-(row["listing_fees"] or 0),
            service_fees=-(row["service_fees"] or 0),
        )
        for row in rows
    ]
