"""The payments admin: money (commission, ledger, refunds, disputes, webhooks) and payouts."""

from payments.admin import audit, integrations, money, payouts, reports
from payments.admin import listing_fees as listing_fees
from payments.admin import plans as plans
from payments.admin import service_fees as service_fees

__all__ = ["audit", "integrations", "money", "payouts", "reports"]
