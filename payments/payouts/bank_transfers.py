"""The bank-transfer file an operator pays a run's manual payouts from."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from marketplace.kernel.money import Money
from marketplace.kernel.spreadsheets import spreadsheet_text
from payments.models import Payout, PayoutMethod, PayoutRun

COLUMNS = [
    "payout_id",
    "reference",
    "beneficiary_name",
    "account_number",
    "routing_code",
    "amount",
    "currency",
    "seller",
]


def payouts_to_transfer(run: PayoutRun) -> Iterable[Payout]:
    """The run's manual payouts that are ready to pay: scheduled, approved where needed."""
    return (
        run.payouts.filter(method=PayoutMethod.MANUAL, status=Payout.Status.SCHEDULED)
        .select_related("seller")
        .order_by("pk")
    )


def bank_transfer_csv(run: PayoutRun) -> str:
    """One row per payout to transfer, amounts in major units with the currency's decimals.

    Reading it changes nothing: the operator marks each payout paid, with the
    bank's reference, once the transfer is made.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for payout in payouts_to_transfer(run):
        seller = payout.seller
        writer.writerow(
            [
                payout.pk,
                f"PAYOUT-{payout.pk}",
                spreadsheet_text(seller.bank_account_holder),
                spreadsheet_text(seller.bank_account_number),
                spreadsheet_text(seller.bank_routing_code),
                f"{Money(payout.amount_minor, payout.currency).to_decimal():f}",
                payout.currency,
                seller.slug,
            ]
        )
    return out.getvalue()
