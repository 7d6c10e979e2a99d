"""The Stripe adapter's one module of SDK calls: ``StripeProcessor``, each method one
request through ``stripe.StripeClient``, answered with a dataclass of
``payments/processors/base.py`` (read by ``translate``), its errors turned into ours
(``errors``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar, cast

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from stripe.params import (
    AccountCreateParams,
    AccountLinkCreateParams,
    PaymentIntentCreateParams,
    PayoutCreateParams,
    RefundCreateParams,
    TransferCreateParams,
    TransferListParams,
    TransferReversalCreateParams,
)

from payments.processors.base import (
    BalanceTransaction,
    ConnectedAccount,
    OnboardingLink,
    Payment,
    Payout,
    ProcessorEvent,
    RefundResult,
    Transfer,
    TransferReversal,
    WebhookSignatureError,
)
from payments.processors.stripe import translate
from payments.processors.stripe.errors import stripe_errors

# The adapter logs under one name, whichever of its modules speaks.
logger = logging.getLogger("payments.processors.stripe")
_P = TypeVar("_P", bound=Mapping[str, Any])

# The API version every request is made with: ``stripe.api_version`` of
# stripe-python 16.1.0. Change it together with the SDK, deliberately.
STRIPE_API_VERSION: Final = "2026-10-28.endive"
# Retries the SDK makes itself on connection errors, 409 and 5xx, each with the
# same Idempotency-Key. 429 is never retried by the SDK.
MAX_NETWORK_RETRIES: Final = 2
# (connect, read) seconds for one HTTP attempt of the default client.
HTTP_TIMEOUT_SECONDS: Final = (5.0, 30.0)
# Largest page Stripe's list endpoints return.
LIST_PAGE_SIZE: Final = 100
# Oldest webhook signature timestamp accepted, in seconds (Stripe's default).
WEBHOOK_TOLERANCE_SECONDS: Final = stripe.Webhook.DEFAULT_TOLERANCE
WEBHOOK_ENDPOINTS: Final = ("platform", "connect")
# Secret (sk_) and restricted (rk_) keys of live mode.
LIVE_KEY_PREFIXES: Final = ("sk_live_", "rk_live_")


class StripeProcessor:
    """``PaymentProcessor`` on Stripe Connect (separate charges and transfers)."""

    name = "stripe"

    def __init__(
        self,
        *,
        secret_key: str,
        webhook_secret: str,
        connect_webhook_secret: str = "",
        api_base: str = "https://api.stripe.com",
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = MAX_NETWORK_RETRIES,
        timeout: float | tuple[float, float] = HTTP_TIMEOUT_SECONDS,
    ) -> None:
        if not secret_key:
            raise ImproperlyConfigured("The Stripe processor needs STRIPE_SECRET_KEY.")
        self._webhook_secrets = {
            "platform": webhook_secret,
            "connect": connect_webhook_secret,
        }
        self.livemode = secret_key.startswith(LIVE_KEY_PREFIXES)
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
            # The timeout belongs to the HTTP client; an injected one brings its own.
            http_client=http_client or stripe.RequestsClient(timeout=timeout),
        )

    @classmethod
    def from_settings(cls, *, http_client: stripe.HTTPClient | None = None) -> StripeProcessor:
        """The processor configured by ``STRIPE_*`` settings (``http_client`` for tests)."""
        return cls(
            secret_key=settings.STRIPE_SECRET_KEY,
            webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
            connect_webhook_secret=settings.STRIPE_CONNECT_WEBHOOK_SECRET,
            api_base=settings.STRIPE_API_BASE,
            http_client=http_client,
        )

    # --- Sellers -----------------------------------------------------------------

    def account_create(self, *, email: str, country: str, idempotency_key: str) -> ConnectedAccount:
        params: AccountCreateParams = {
            "type": "express",
            "country": country,
            "email": email,
            # Transfers only: the platform takes the payments (separate charges and
            # transfers), so sellers never need card payments on their accounts.
            "capabilities": {"transfers": {"requested": True}},
            # The platform decides when sellers are paid out.
            "settings": {"payouts": {"schedule": {"interval": "manual"}}},
        }
        with stripe_errors("account_create"):
            account = self._client.v1.accounts.create(
                _params(params), {"idempotency_key": idempotency_key}
            )
            return translate.connected_account_of(account)

    def account_onboarding_link(
        self, *, account_id: str, refresh_url: str, return_url: str
    ) -> OnboardingLink:
        # No idempotency key in the interface: an Account Link is single-use and
        # short-lived, and a new one is the right answer to a retry. The SDK
        # sends a random key of its own, so its network retries are still safe.
        params: AccountLinkCreateParams = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
        with stripe_errors("account_onboarding_link"):
            link = self._client.v1.account_links.create(_params(params))
            return OnboardingLink(url=link.url, expires_at=translate.datetime_of(link.expires_at))

    def account_get(self, *, account_id: str) -> ConnectedAccount:
        with stripe_errors("account_get"):
            account = self._client.v1.accounts.retrieve(account_id)
            return translate.connected_account_of(account)

    # --- Customers' payments ---------------------------------------------------------

    def payment_create(
        self,
        *,
        amount_minor: int,
        currency: str,
        transfer_group: str,
        customer_email: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payment:
        params: PaymentIntentCreateParams = {
            "amount": _amount(amount_minor),
            "currency": currency.lower(),
            "transfer_group": transfer_group,
            "receipt_email": customer_email,
            "metadata": dict(metadata),
            "automatic_payment_methods": {"enabled": True},
        }
        with stripe_errors("payment_create"):
            intent = self._client.v1.payment_intents.create(
                _params(params), {"idempotency_key": idempotency_key}
            )
            return translate.payment_of(intent)

    def payment_get(self, *, payment_id: str) -> Payment:
        with stripe_errors("payment_get"):
            intent = self._client.v1.payment_intents.retrieve(
                payment_id, {"expand": ["latest_charge.balance_transaction"]}
            )
            return translate.payment_of(intent)

    def payment_method_type_get(self, *, payment_id: str) -> str:
        """How the customer paid the PaymentIntent: its latest charge's
        ``payment_method_details.type`` (``card``, ``sepa_debit``, ``us_bank_account``,
        …), blank before there is a charge. Its events do not say it: with automatic
        payment methods ``payment_method_types`` lists every method enabled."""
        with stripe_errors("payment_get"):
            intent = self._client.v1.payment_intents.retrieve(
                payment_id, {"expand": ["latest_charge"]}
            )
        charge = getattr(intent, "latest_charge", None)
        details = getattr(charge, "payment_method_details", None) if charge else None
        return translate.optional_str(details, "type") if details is not None else ""

    def payment_cancel(self, *, payment_id: str, idempotency_key: str) -> Payment:
        with stripe_errors("payment_cancel"):
            intent = self._client.v1.payment_intents.cancel(
                payment_id, {}, {"idempotency_key": idempotency_key}
            )
            return translate.payment_of(intent)

    def refund_create(
        self,
        *,
        payment_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        params: RefundCreateParams = {
            "payment_intent": payment_id,
            "amount": _amount(amount_minor),
            "metadata": dict(metadata),
        }
        with stripe_errors("refund_create"):
            refund = self._client.v1.refunds.create(
                _params(params), {"idempotency_key": idempotency_key}
            )
            return RefundResult(
                id=refund.id,
                status=refund.status or "pending",
                amount_minor=refund.amount,
                currency=refund.currency.upper(),
                # Present only on a failed refund.
                failure_reason=translate.optional_str(refund, "failure_reason"),
            )

    # --- Moving money to sellers ------------------------------------------------------

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
    ) -> Transfer:
        params: TransferCreateParams = {
            "amount": _amount(amount_minor),
            "currency": currency.lower(),
            "destination": destination,
            "transfer_group": transfer_group,
            "metadata": dict(metadata),
        }
        if source_charge:
            # Only when one charge funds the transfer; never sent empty (Stripe
            # refuses an empty value for a parameter that cannot be unset).
            params["source_transaction"] = source_charge
        with stripe_errors("transfer_create"):
            transfer = self._client.v1.transfers.create(
                _params(params), {"idempotency_key": idempotency_key}
            )
            return translate.transfer_of(transfer)

    def transfer_find(self, *, transfer_group: str, destination: str) -> Transfer | None:
        with stripe_errors("transfer_find"):
            page = self._client.v1.transfers.list(
                _params(
                    TransferListParams(
                        transfer_group=transfer_group, destination=destination, limit=LIST_PAGE_SIZE
                    )
                )
            )
            found = [translate.transfer_of(transfer) for transfer in page.auto_paging_iter()]
        # One per group is all we ever make; an older duplicate would be a bug to see.
        if len(found) > 1:
            logger.error("Found %d transfers in group %s", len(found), transfer_group)
        return found[-1] if found else None

    def transfer_reverse(
        self,
        *,
        transfer_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> TransferReversal:
        params: TransferReversalCreateParams = {
            "amount": _amount(amount_minor),
            "metadata": dict(metadata),
        }
        with stripe_errors("transfer_reverse"):
            reversal = self._client.v1.transfers.reversals.create(
                transfer_id, _params(params), {"idempotency_key": idempotency_key}
            )
            return translate.reversal_of(reversal)

    def transfer_reversal_find(
        self, *, transfer_id: str, metadata: Mapping[str, str]
    ) -> TransferReversal | None:
        with stripe_errors("transfer_reversal_find"):
            page = self._client.v1.transfers.reversals.list(transfer_id, {"limit": LIST_PAGE_SIZE})
            for reversal in page.auto_paging_iter():
                if translate.metadata_has(reversal, metadata):
                    return translate.reversal_of(reversal)
        return None

    def account_balance(self, *, account_id: str, currency: str) -> int:
        with stripe_errors("account_balance"):
            balance = self._client.v1.balance.retrieve(options={"stripe_account": account_id})
            return sum(
                part.amount
                for part in balance.available or []
                if part.currency.upper() == currency.upper()
            )

    def payout_create(
        self,
        *,
        account_id: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        # Made on the connected account: from its balance to its bank account.
        params: PayoutCreateParams = {
            "amount": _amount(amount_minor),
            "currency": currency.lower(),
            "metadata": dict(metadata),
            # The bank account as an object: its last four digits go on the payout.
            "expand": ["destination"],
        }
        with stripe_errors("payout_create"):
            payout = self._client.v1.payouts.create(
                _params(params), {"idempotency_key": idempotency_key, "stripe_account": account_id}
            )
            return translate.payout_of(payout, account_id)

    def payout_find(
        self, *, account_id: str, metadata: Mapping[str, str], since: datetime
    ) -> Payout | None:
        with stripe_errors("payout_find"):
            page = self._client.v1.payouts.list(
                {"created": {"gte": _timestamp(since)}, "limit": LIST_PAGE_SIZE},
                {"stripe_account": account_id},
            )
            for payout in page.auto_paging_iter():
                if translate.metadata_has(payout, metadata):
                    return translate.payout_of(payout, account_id)
        return None

    # --- Events and reconciliation ------------------------------------------------------

    def webhook_parse(
        self, *, payload: bytes, headers: Mapping[str, str], endpoint: str = "platform"
    ) -> ProcessorEvent:
        """Verify and parse one webhook delivery of the ``platform`` or ``connect`` endpoint."""
        if endpoint not in WEBHOOK_ENDPOINTS:
            raise ValueError(f"Unknown Stripe webhook endpoint {endpoint!r}.")
        secret = self._webhook_secrets[endpoint]
        if not secret:
            raise WebhookSignatureError(
                f"No signing secret is configured for the Stripe {endpoint} webhook endpoint.",
                code="endpoint_not_configured",
            )
        signature = _header(headers, "Stripe-Signature")
        if not signature:
            raise WebhookSignatureError("No Stripe-Signature header.", code="missing_signature")
        try:
            event = self._client.construct_event(
                payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            # The SDK's message names the reason, never the header or the secret.
            logger.warning("Rejected a Stripe %s webhook: %s", endpoint, exc.user_message)
            raise WebhookSignatureError(
                f"Invalid Stripe webhook signature: {exc.user_message}", code="invalid_signature"
            ) from None
        except ValueError:
            # Not UTF-8, not JSON, or not a snapshot event.
            logger.warning("Rejected a Stripe %s webhook: malformed payload", endpoint)
            raise WebhookSignatureError(
                "The Stripe webhook payload is not an event.", code="invalid_payload"
            ) from None
        if event.livemode != self.livemode:
            logger.warning(
                "Rejected Stripe event %s: livemode=%s but our key is %s mode",
                event.id,
                event.livemode,
                "live" if self.livemode else "test",
            )
            raise WebhookSignatureError(
                "The event's livemode does not match our API key.", code="livemode_mismatch"
            )
        return translate.processor_event_of(event)

    def events_list(
        self, *, since: datetime, account: str = "", types: Sequence[str] = ()
    ) -> Sequence[ProcessorEvent]:
        """Events created at or after ``since``, oldest first: the platform's own, or
        with ``account`` that connected account's (Stripe lists only the requesting
        account's events: a Connect event is listed with its ``Stripe-Account``).

        Stripe keeps events for 30 days and lists them newest first.
        """
        params: dict[str, object] = {"created": {"gte": _timestamp(since)}, "limit": LIST_PAGE_SIZE}
        if types:
            params["types"] = list(types)
        options = {"stripe_account": account} if account else {}
        with stripe_errors("events_list"):
            page = self._client.v1.events.list(params, options)  # type: ignore[arg-type]
            events = [
                translate.processor_event_of(event, account) for event in page.auto_paging_iter()
            ]
        events.reverse()
        return events

    def balance_transactions_list(
        self, *, since: datetime, until: datetime
    ) -> Sequence[BalanceTransaction]:
        """The platform's balance transactions created in ``[since, until)``."""
        with stripe_errors("balance_transactions_list"):
            page = self._client.v1.balance_transactions.list(
                {
                    "created": {"gte": _timestamp(since), "lt": _timestamp(until)},
                    "limit": LIST_PAGE_SIZE,
                    # The charge behind a charge's balance transaction names its payment.
                    "expand": ["data.source"],
                }
            )
            transactions = [
                BalanceTransaction(
                    id=txn.id,
                    type=txn.type,
                    amount_minor=txn.amount,
                    fee_minor=txn.fee,
                    net_minor=txn.net,
                    currency=txn.currency.upper(),
                    source=translate.id_of(txn.source),
                    created=translate.datetime_of(txn.created),
                    payment_intent=translate.id_of(getattr(txn.source, "payment_intent", None))
                    if not isinstance(txn.source, str)
                    else "",
                )
                for txn in page.auto_paging_iter()
            ]
        return transactions


# --- Request parameters -------------------------------------------------------------


def _amount(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"Amounts are integer minor units, not {type(amount_minor).__name__}.")
    return amount_minor


def _timestamp(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("Stripe timestamps need an aware datetime.")
    return int(moment.timestamp())


def _params(values: _P) -> _P:
    """Request parameters without the unset ones: Stripe refuses an empty string for a
    parameter that cannot be unset (``parameter_invalid_empty``), so a value that is
    ``None`` or ``""`` is left out, at every level."""
    return cast(_P, _without_unset(values))


def _without_unset(values: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            value = _without_unset(value)
            if not value:
                continue
        elif value is None or value == "":
            continue
        params[key] = value
    return params


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case (Django's ``request.headers`` or a plain dict)."""
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value or ""
