"""The payments admin: money (commission, ledger, refunds, disputes, webhooks) and payouts."""

from payments.admin import integrations, money, payouts, reports

__all__ = ["integrations", "money", "payouts", "reports"]
