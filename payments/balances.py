"""What sellers and the platform have, per currency, read from the ledger.

Amounts are shown from the owner's side: a seller's ``available`` is what the
platform owes them (negative when they owe the platform, after a refund that
came after a payout). Reads use the accounts' running balances, which the
posting service keeps equal to the sum of their entries (``check_ledger``
proves it).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from accounts.models import Seller
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

Kind = LedgerAccount.Kind


@dataclass(frozen=True, slots=True)
class SellerBalance:
    currency: str
    pending: int
    available: int
    in_transit: int
    paid_out: int

    @property
    def total_owed(self) -> int:
        """Everything the platform still owes the seller."""
        return self.pending + self.available + self.in_transit


@dataclass(frozen=True, slots=True)
class PlatformBalance:
    currency: str
    commission_earned: int
    processor_fees: int
    cash_at_processor: int
    paid_from_bank: int = 0


def seller_currencies(seller: Seller) -> list[str]:
    """The currencies a seller has money in, and their default currency, sorted."""
    held = LedgerAccount.objects.filter(seller=seller).values_list("currency", flat=True)
    return sorted({seller.default_currency} | set(held.distinct()))


def seller_balance(*, seller: Seller, currency: str) -> SellerBalance:
    """Pending, available, in transit and paid-out totals of one seller in one currency."""
    balances = dict(
        LedgerAccount.objects.filter(seller=seller, currency=currency).values_list(
            "kind", "balance_minor"
        )
    )
    paid_out = LedgerEntry.objects.filter(
        account__seller=seller,
        account__currency=currency,
        account__kind=Kind.IN_TRANSIT,
        transaction_kind=LedgerTransaction.Kind.PAYOUT_PAID,
    ).aggregate(total=Sum("amount_minor"))["total"]
    return SellerBalance(
        currency=currency,
        pending=-balances.get(Kind.PENDING, 0),
        available=-balances.get(Kind.AVAILABLE, 0),
        in_transit=-balances.get(Kind.IN_TRANSIT, 0),
        paid_out=paid_out or 0,
    )


def platform_balance(*, currency: str) -> PlatformBalance:
    """Commission earned, processor fees paid, cash held at the processor, and what
    manual payouts paid from the platform's bank."""
    balances = dict(
        LedgerAccount.objects.filter(seller__isnull=True, currency=currency).values_list(
            "kind", "balance_minor"
        )
    )
    return PlatformBalance(
        currency=currency,
        commission_earned=-balances.get(Kind.COMMISSION, 0),
        processor_fees=balances.get(Kind.PROCESSOR_FEES, 0),
        cash_at_processor=balances.get(Kind.PROCESSOR, 0),
        paid_from_bank=-balances.get(Kind.BANK, 0),
    )
