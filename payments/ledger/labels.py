"""What each kind of ledger transaction is called in front of a seller: their
history, their transactions page and a payout's breakdown all say the same words."""

from __future__ import annotations

from payments.models import LedgerTransaction

TxnKind = LedgerTransaction.Kind

LABELS: dict[str, str] = {
    TxnKind.PAYMENT_CAPTURED: "Sale",
    TxnKind.PROCESSOR_FEE: "Processor fee",
    TxnKind.HOLD_RELEASED: "Earnings available",
    TxnKind.REFUND: "Refund",
    TxnKind.PAYOUT_SENT: "Payout sent",
    TxnKind.PAYOUT_PAID: "Payout paid",
    TxnKind.PAYOUT_FAILED: "Payout failed",
    TxnKind.PAYOUT_RETURNED: "Payout returned by your bank",
    TxnKind.TRANSFER_REVERSED: "Taken back from a payout (refund or dispute)",
    TxnKind.DISPUTE_OPENED: "Dispute opened",
    TxnKind.DISPUTE_WON: "Dispute won",
    TxnKind.DISPUTE_LOST: "Dispute lost",
    TxnKind.ADJUSTMENT: "Adjustment",
    TxnKind.PLAN_FEE: "Plan fee",
    TxnKind.PLAN_FEE_CREDIT: "Plan fee credited",
    TxnKind.LISTING_FEE: "Listing fee",
}
