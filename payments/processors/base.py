"""The one interface the marketplace uses to move real money.

Nothing outside ``payments/processors/`` imports a processor SDK. Each
adapter turns the SDK's objects into the dataclasses below and its errors
into the exceptions below, so the rest of the code reads the same whichever
processor runs: ``local`` (simulated, stored in our database) or ``stripe``.

Every mutating operation takes an ``idempotency_key`` derived from one of our
own rows (``payment-<order id>-<attempt>``, ``refund-<refund id>``, ...): a
retry after a timeout sends the same key, so the processor does the work once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from marketplace.kernel.errors import UpstreamError, UpstreamUnavailable

# --- Errors -------------------------------------------------------------------


class ProcessorError(UpstreamError):
    """Something the processor refused or could not do.

    ``param`` names the field of our own request at fault, where the caller knows
    one (a declined card is the ``card_number`` of the API's confirm call).
    """


class CardDeclined(ProcessorError):
    """The customer's card was declined; ``message`` can be shown to the customer."""


class InvalidProcessorRequest(ProcessorError):
    """We sent something wrong: a bug on our side, logged loudly, never retried."""


class TemporaryProcessorError(ProcessorError, UpstreamUnavailable):
    """Rate limited, timed out or unavailable: retry later with the same idempotency key."""


class ProcessorAuthenticationError(ProcessorError):
    """Our keys are wrong or revoked: a configuration problem."""


class WebhookSignatureError(ProcessorError):
    """An incoming webhook is not signed by the processor (or is too old)."""


# --- What operations return ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectedAccount:
    id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: tuple[str, ...] = ()
    # The ``transfers`` capability is active: the account can receive our transfers.
    # Sellers' accounts request only that capability, so ``charges_enabled`` (card
    # payments on the account) stays false for them and says nothing about payouts.
    transfers_active: bool = False

    @property
    def can_be_paid(self) -> bool:
        """Transfers reach it and it can pay out to its bank account."""
        return self.transfers_active and self.payouts_enabled


@dataclass(frozen=True, slots=True)
class OnboardingLink:
    url: str
    expires_at: datetime | None = None


class PaymentStatus:
    """The states of a payment, as Stripe names those of a PaymentIntent."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    status: str
    amount_minor: int
    currency: str
    client_secret: str = ""
    charge_id: str = ""
    failure_message: str = ""
    fee_minor: int | None = None
    # What the customer must do before the payment can go on (Stripe's PaymentIntent
    # ``next_action``, e.g. ``{"type": "redirect_to_url", ...}``; the local processor's
    # ``{"type": "local_authenticate"}``), as plain JSON; None when nothing is asked.
    next_action: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    id: str
    status: str  # pending, succeeded, failed, canceled
    amount_minor: int
    currency: str
    failure_reason: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    amount_minor: int
    currency: str
    destination: str
    reversed_minor: int = 0


@dataclass(frozen=True, slots=True)
class TransferReversal:
    id: str
    transfer_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    status: str  # pending, in_transit, paid, failed, canceled
    amount_minor: int
    currency: str
    account: str = ""
    failure_message: str = ""
    failure_code: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    # When the bank should have the money, and the last four digits of its account
    # (known when the processor answers with the bank account, e.g. on creation).
    arrival_on: date | None = None
    bank_last4: str = ""


def arrival_on(timestamp: object) -> date | None:
    """A payout's ``arrival_date`` (a Unix time at midnight UTC, as Stripe sends it) as a
    date; None when missing."""
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return None
    return datetime.fromtimestamp(timestamp, UTC).date()


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    id: str
    type: str
    amount_minor: int
    fee_minor: int
    net_minor: int
    currency: str
    source: str
    created: datetime
    payment_intent: str = ""  # for a charge: the payment it belongs to


@dataclass(frozen=True, slots=True)
class ProcessorEvent:
    """A verified webhook event: its id, type, the object it is about, and where it came from."""

    id: str
    type: str
    created: datetime
    livemode: bool
    data: Mapping[str, Any]
    account: str = ""  # the connected account, for Connect events
    previous_attributes: Mapping[str, Any] = field(default_factory=dict)


# --- The interface --------------------------------------------------------------


class PaymentProcessor(Protocol):
    """What the marketplace needs from a payment processor."""

    name: str

    # Sellers
    def account_create(
        self, *, email: str, country: str, idempotency_key: str
    ) -> ConnectedAccount: ...

    def account_onboarding_link(
        self, *, account_id: str, refresh_url: str, return_url: str
    ) -> OnboardingLink: ...

    def account_get(self, *, account_id: str) -> ConnectedAccount: ...

    # Customers' payments
    def payment_create(
        self,
        *,
        amount_minor: int,
        currency: str,
        transfer_group: str,
        customer_email: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payment: ...

    def payment_get(self, *, payment_id: str) -> Payment: ...

    def payment_method_type_get(self, *, payment_id: str) -> str:
        """How the customer paid (``card``, ``sepa_debit``, ``bank_debit``, ...): blank
        before the payment is confirmed."""
        ...

    def payment_cancel(self, *, payment_id: str, idempotency_key: str) -> Payment: ...

    def refund_create(
        self,
        *,
        payment_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> RefundResult: ...

    # Moving money to sellers
    def transfer_create(
        self,
        *,
        amount_minor: int,
        currency: str,
        destination: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        source_charge: str | None = None,
    ) -> Transfer: ...

    def transfer_find(self, *, transfer_group: str, destination: str) -> Transfer | None:
        """The transfer of this group to this account, if one was made (a look-up
        before a new attempt, whose key the processor may have forgotten)."""
        ...

    def transfer_reverse(
        self,
        *,
        transfer_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> TransferReversal: ...

    def transfer_reversal_find(
        self, *, transfer_id: str, metadata: Mapping[str, str]
    ) -> TransferReversal | None:
        """The transfer's reversal carrying this metadata, if one was made."""
        ...

    def account_balance(self, *, account_id: str, currency: str) -> int:
        """The connected account's available balance in this currency."""
        ...

    def payout_create(
        self,
        *,
        account_id: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout: ...

    def payout_find(
        self, *, account_id: str, metadata: Mapping[str, str], since: datetime
    ) -> Payout | None:
        """The connected account's payout created since ``since`` carrying this
        metadata, if one was made."""
        ...

    # Events and reconciliation
    def webhook_parse(
        self, *, payload: bytes, headers: Mapping[str, str], endpoint: str = "platform"
    ) -> ProcessorEvent: ...

    def events_list(
        self, *, since: datetime, account: str = "", types: Sequence[str] = ()
    ) -> Sequence[ProcessorEvent]:
        """Events since ``since``, oldest first: the platform's, or with ``account``
        that connected account's; only ``types`` if given."""
        ...

    def balance_transactions_list(
        self, *, since: datetime, until: datetime
    ) -> Sequence[BalanceTransaction]: ...
