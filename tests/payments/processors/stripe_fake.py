"""A recording stand-in for stripe-python's HTTP client, and Stripe-shaped objects.

``RecordingHTTPClient`` subclasses ``stripe.HTTPClient`` (``stripe._http_client``)
and overrides ``request``: the one method the SDK's retry loop
(``request_with_retries``) calls per attempt. It records every attempt and answers
with queued responses, so a test sees exactly what would have gone over the wire,
retries included. Nothing leaves the process. With ``strict=True`` (the default)
a request that real Stripe would refuse (``stripe_rules.check_request``: unknown,
missing or empty parameters...) gets Stripe's error instead of the queued answer.

The response bodies follow the objects documented in Stripe's API reference.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from requests.structures import CaseInsensitiveDict

from tests.payments.processors import stripe_rules

SECRET_KEY = "sk_test_51FakeSecretKeyForTestsOnly"
LIVE_SECRET_KEY = "sk_live_51FakeLiveKeyForTestsOnly"
WEBHOOK_SECRET = "whsec_platform_test_secret"
CONNECT_WEBHOOK_SECRET = "whsec_connect_test_secret"
API_BASE = "http://stripe.test:12111"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    path: str
    query: dict[str, str]
    params: dict[str, str]
    headers: dict[str, str]


class RecordingBase(stripe.HTTPClient):
    """What both fakes share: every attempt recorded as sent, the SDK's retry sleeps
    recorded instead of slept, nothing streamed."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self.retry_sleeps: list[int] = []

    def record(self, method: str, url: str, headers: Any, post_data: Any) -> RecordedRequest:
        parts = urlsplit(url)
        recorded = RecordedRequest(
            method=method.upper(),
            url=url,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            params=dict(parse_qsl(post_data or "", keep_blank_values=True)),
            headers=dict(headers or {}),
        )
        self.requests.append(recorded)
        return recorded

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _sleep_time_seconds(self, num_retries: int) -> float:
        # The SDK sleeps between retries (0.5 s and up); record instead of waiting.
        self.retry_sleeps.append(num_retries)
        return 0.0

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]


class RecordingHTTPClient(RecordingBase):
    name = "recording-fake"

    def __init__(self, *, strict: bool = True) -> None:
        super().__init__()
        # Strict: a request Stripe would refuse (``stripe_rules.check_request``) gets
        # Stripe's error answer instead of the queued one, which it replaces.
        self.strict = strict
        self._answers: deque[tuple[int, dict[str, Any], dict[str, str]] | Exception] = deque()
        self._request_ids = 0

    # --- Queueing answers -----------------------------------------------------

    def respond(
        self, body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self._answers.append((status, body, headers or {}))

    def fail(self, error: Exception) -> None:
        """Raise ``error`` from the next attempt, as a real client does on a network error."""
        self._answers.append(error)

    # --- The SDK's HTTPClient interface ------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, Any]:
        recorded = self.record(method, url, headers, post_data)
        if self.strict:
            refusal = stripe_rules.check_request(
                recorded.method,
                recorded.path,
                recorded.params if recorded.method == "POST" else recorded.query,
                recorded.headers,
            )
            if refusal is not None:
                if self._answers:
                    self._answers.popleft()
                status, body = refusal
                return self._reply(status, body, {})
        if not self._answers:
            raise AssertionError(f"Unexpected Stripe request: {method.upper()} {url}")
        answer = self._answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        status, body, extra_headers = answer
        return self._reply(status, body, extra_headers)

    def _reply(
        self, status: int, body: dict[str, Any], extra_headers: dict[str, str]
    ) -> tuple[str, int, Any]:
        self._request_ids += 1
        # Like requests' response headers: case-insensitive (the SDK reads "request-id").
        response_headers = CaseInsensitiveDict(
            {"Request-Id": f"req_fake{self._request_ids}", **extra_headers}
        )
        return json.dumps(body), status, response_headers

    # --- Reading what was sent ---------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._answers)


def timeout_error() -> stripe.APIConnectionError:
    """What stripe-python's RequestsClient raises on a read timeout (retryable)."""
    return stripe.APIConnectionError(
        "Unexpected error communicating with Stripe.\n\n(Network error: ReadTimeout)",
        should_retry=True,
    )


def sign(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header, per Stripe's documented scheme.

    ``v1`` is the hex HMAC-SHA256, keyed with the endpoint's signing secret, of
    ``"<timestamp>.<raw body>"``.
    """
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


# --- Stripe-shaped objects ---------------------------------------------------------------


def error_body(
    type_: str, message: str, *, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    error.update(extra)
    return {"error": error}


def card_declined_body() -> dict[str, Any]:
    return error_body(
        "card_error",
        "Your card has insufficient funds.",
        code="card_declined",
        decline_code="insufficient_funds",
        doc_url="https://docs.stripe.com/error-codes/card-declined",
    )


def rate_limit_body() -> dict[str, Any]:
    return error_body(
        "invalid_request_error",
        "Too many requests hit the API too quickly.",
        code="rate_limit",
    )


def api_error_body() -> dict[str, Any]:
    return error_body("api_error", "An unknown error occurred.")


def payment_intent(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "pi_3PaYmEnT7",
        "object": "payment_intent",
        "amount": 1250,
        "amount_capturable": 0,
        "amount_received": 0,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": "pi_3PaYmEnT7_secret_Xyz123",
        "confirmation_method": "automatic",
        "created": 1767225600,
        "currency": "usd",
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": {"order_id": "7"},
        "payment_method": None,
        "receipt_email": "buyer@example.com",
        "status": "requires_payment_method",
        "transfer_group": "order-7",
    }
    obj.update(overrides)
    return obj


def balance_transaction(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "txn_3PaYmEnT7",
        "object": "balance_transaction",
        "amount": 1250,
        "available_on": 1767398400,
        "created": 1767225600,
        "currency": "usd",
        "description": None,
        "exchange_rate": None,
        "fee": 66,
        "fee_details": [
            {
                "amount": 66,
                "application": None,
                "currency": "usd",
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ],
        "net": 1184,
        "reporting_category": "charge",
        "source": "ch_3PaYmEnT7",
        "status": "pending",
        "type": "charge",
    }
    obj.update(overrides)
    return obj


def charge(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "ch_3PaYmEnT7",
        "object": "charge",
        "amount": 1250,
        "amount_captured": 1250,
        "amount_refunded": 0,
        "balance_transaction": balance_transaction(),
        "captured": True,
        "created": 1767225600,
        "currency": "usd",
        "livemode": False,
        "metadata": {"order_id": "7"},
        "paid": True,
        "payment_intent": "pi_3PaYmEnT7",
        "status": "succeeded",
        "transfer_group": "order-7",
    }
    obj.update(overrides)
    return obj


def refund(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "re_3PaYmEnT7",
        "object": "refund",
        "amount": 500,
        "balance_transaction": "txn_3ReFuNd",
        "charge": "ch_3PaYmEnT7",
        "created": 1767312000,
        "currency": "usd",
        "metadata": {"refund_id": "12"},
        "payment_intent": "pi_3PaYmEnT7",
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    obj.update(overrides)
    return obj


def transfer(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "tr_1SeLLeR3",
        "object": "transfer",
        "amount": 1000,
        "amount_reversed": 0,
        "balance_transaction": "txn_1TrAnSfEr",
        "created": 1767225660,
        "currency": "usd",
        "description": None,
        "destination": "acct_1SeLLeR3",
        "destination_payment": "py_1SeLLeR3",
        "livemode": False,
        "metadata": {"order_id": "7", "seller_id": "3"},
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": "/v1/transfers/tr_1SeLLeR3/reversals",
        },
        "reversed": False,
        "source_transaction": "ch_3PaYmEnT7",
        "source_type": "card",
        "transfer_group": "order-7",
    }
    obj.update(overrides)
    return obj


def transfer_reversal(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "trr_1ReVeRsAl",
        "object": "transfer_reversal",
        "amount": 300,
        "balance_transaction": "txn_1ReVeRsAl",
        "created": 1767312060,
        "currency": "usd",
        "destination_payment_refund": "pyr_1ReVeRsAl",
        "metadata": {},
        "source_refund": None,
        "transfer": "tr_1SeLLeR3",
    }
    obj.update(overrides)
    return obj


def payout(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "po_1PaYoUt9",
        "object": "payout",
        "amount": 5000,
        "arrival_date": 1767484800,
        "automatic": False,
        "balance_transaction": "txn_1PaYoUt9",
        "created": 1767398400,
        "currency": "usd",
        "description": None,
        "destination": "ba_1BaNk",
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {"payout_id": "9"},
        "method": "standard",
        "source_type": "card",
        "statement_descriptor": None,
        "status": "pending",
        "type": "bank_account",
    }
    obj.update(overrides)
    return obj


def account(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "acct_1SeLLeR3",
        "object": "account",
        "business_type": None,
        "capabilities": {"transfers": "inactive"},
        "charges_enabled": False,
        "country": "US",
        "created": 1767225000,
        "default_currency": "usd",
        "details_submitted": False,
        "email": "seller@example.com",
        "metadata": {},
        "payouts_enabled": False,
        "requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": ["business_type", "external_account", "tos_acceptance.date"],
            "disabled_reason": "requirements.past_due",
            "errors": [],
            "eventually_due": ["business_type", "external_account", "tos_acceptance.date"],
            "past_due": ["business_type", "external_account", "tos_acceptance.date"],
            "pending_verification": [],
        },
        "settings": {
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "manual"},
                "statement_descriptor": None,
            }
        },
        "type": "express",
    }
    obj.update(overrides)
    return obj


def account_link(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "object": "account_link",
        "created": 1767225600,
        "expires_at": 1767225900,
        "url": "https://connect.stripe.com/setup/e/acct_1SeLLeR3/AbCdEf123",
    }
    obj.update(overrides)
    return obj


def event(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "evt_3PaYmEnT7",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": 1767225700,
        "data": {"object": payment_intent(status="succeeded", latest_charge="ch_3PaYmEnT7")},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_abc", "idempotency_key": "payment-7-1"},
        "type": "payment_intent.succeeded",
    }
    obj.update(overrides)
    return obj


def list_of(url: str, data: list[dict[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}
