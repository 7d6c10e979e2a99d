"""The tables of the money: the ledger, payments, refunds, disputes, payouts, fees,
plans, webhooks and the local processor's simulated Stripe. They import only the shared
kernel and ``payments.webhook_secrets``; every package of ``payments`` builds on them."""

from payments.models.attempts import PaymentAttempt
from payments.models.audit import AuditRecord
from payments.models.commission import CommissionRule, VolumeTier
from payments.models.disputes import Dispute, DisputeLine
from payments.models.events import Event
from payments.models.fees import ListingCharge, ListingFee, ServiceFee
from payments.models.ledger import (
    LedgerAccount,
    LedgerBalanceShard,
    LedgerEntry,
    LedgerTransaction,
    ReconciliationReport,
    RevenueReport,
)
from payments.models.local import (
    LocalAccount,
    LocalEvent,
    LocalPaymentIntent,
    LocalPayout,
    LocalRefund,
    LocalTransfer,
    LocalTransferReversal,
)
from payments.models.notifications import SentNotification
from payments.models.outbound_webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.models.payouts import (
    Clawback,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutPolicy,
    PayoutRun,
    PayoutRunChunk,
    PayoutStep,
)
from payments.models.plans import SellerPlan, SellerPlanCharge, SellerPlanChoice
from payments.models.reconciliation_runs import ReconciliationRun
from payments.models.refund_requests import RefundRequest
from payments.models.refunds import Refund, RefundLine
from payments.models.webhooks import WebhookEvent

__all__ = [
    "AuditRecord",
    "Clawback",
    "CommissionRule",
    "Dispute",
    "DisputeLine",
    "Event",
    "LedgerAccount",
    "LedgerBalanceShard",
    "LedgerEntry",
    "LedgerTransaction",
    "ListingCharge",
    "ListingFee",
    "LocalAccount",
    "LocalEvent",
    "LocalPaymentIntent",
    "LocalPayout",
    "LocalRefund",
    "LocalTransfer",
    "LocalTransferReversal",
    "PaymentAttempt",
    "Payout",
    "PayoutEntry",
    "PayoutMethod",
    "PayoutPolicy",
    "PayoutRun",
    "PayoutRunChunk",
    "PayoutStep",
    "ReconciliationReport",
    "ReconciliationRun",
    "Refund",
    "RefundLine",
    "RefundRequest",
    "RevenueReport",
    "SellerPlan",
    "SellerPlanCharge",
    "SellerPlanChoice",
    "SentNotification",
    "ServiceFee",
    "VolumeTier",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
