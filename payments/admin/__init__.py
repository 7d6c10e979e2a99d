"""The payments admin: money (commission, ledger, refunds, disputes, webhooks) and payouts."""

from payments.admin import money, payouts

__all__ = ["money", "payouts"]
