from payments.models.commission import CommissionRule
from payments.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from payments.models.refunds import Refund, RefundLine

__all__ = [
    "CommissionRule",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Refund",
    "RefundLine",
]
