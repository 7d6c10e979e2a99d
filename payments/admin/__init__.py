"""The payments admin: money (commission, ledger, refunds, disputes, webhooks) and payouts."""

from payments.admin import money, payouts, reports

__all__ = ["money", "payouts", "reports"]
