"""The payments admin: money (commission, ledger, refunds, disputes, webhooks) and payouts."""

from payments.admin import audit, integrations, money, payouts, reports

__all__ = ["audit", "integrations", "money", "payouts", "reports"]
