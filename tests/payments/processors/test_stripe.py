"""The Stripe adapter, against a recording fake of stripe-python's HTTP client.

Every test asserts what would go over the wire (method, path, form parameters,
headers) and the dataclass that comes back. Nothing reaches Stripe or any network.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, date, datetime

import pytest
import requests
import stripe
from django.core.exceptions import ImproperlyConfigured

from payments.processors.base import (
    BalanceTransaction,
    CardDeclined,
    ConnectedAccount,
    InvalidProcessorRequest,
    OnboardingLink,
    Payment,
    Payout,
    ProcessorAuthenticationError,
    RefundResult,
    TemporaryProcessorError,
    Transfer,
    TransferReversal,
    WebhookSignatureError,
)
from payments.processors.stripe import STRIPE_API_VERSION, StripeProcessor
from tests.payments.processors import stripe_fake as fake
from tests.payments.processors.stripe_fake import RecordingHTTPClient


@pytest.fixture(autouse=True)
def _no_sdk_telemetry(monkeypatch):
    # The SDK would otherwise write ~/.config/stripe/telemetry_id and add a header.
    monkeypatch.setattr(stripe, "enable_telemetry", False)


@pytest.fixture
def http() -> RecordingHTTPClient:
    return RecordingHTTPClient()


def make_processor(http: RecordingHTTPClient, **overrides) -> StripeProcessor:
    options = {
        "secret_key": fake.SECRET_KEY,
        "webhook_secret": fake.WEBHOOK_SECRET,
        "connect_webhook_secret": fake.CONNECT_WEBHOOK_SECRET,
        "api_base": fake.API_BASE,
        "http_client": http,
    }
    options.update(overrides)
    return StripeProcessor(**options)


@pytest.fixture
def processor(http) -> StripeProcessor:
    return make_processor(http)


def assert_common_headers(request: fake.RecordedRequest) -> None:
    assert request.headers["Authorization"] == f"Bearer {fake.SECRET_KEY}"
    assert request.headers["Stripe-Version"] == STRIPE_API_VERSION
    assert request.url.startswith(fake.API_BASE + "/v1/")


def assert_mutating(request: fake.RecordedRequest, idempotency_key: str) -> None:
    assert_common_headers(request)
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == idempotency_key
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.query == {}


# --- Configuration ---------------------------------------------------------------------


def test_the_pinned_api_version_is_the_one_the_sdk_was_generated_for():
    assert STRIPE_API_VERSION == "2026-10-28.endive" == stripe.api_version


def test_requests_go_to_the_configured_api_base(http, settings):
    settings.STRIPE_SECRET_KEY = fake.SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = fake.WEBHOOK_SECRET
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = ""
    settings.STRIPE_API_BASE = "http://localhost:12111"
    processor = StripeProcessor.from_settings(http_client=http)
    http.respond(fake.account())

    processor.account_get(account_id="acct_1SeLLeR3")

    assert http.last.url == "http://localhost:12111/v1/accounts/acct_1SeLLeR3"
    assert http.last.headers["Authorization"] == f"Bearer {fake.SECRET_KEY}"


def test_the_default_http_client_has_an_explicit_timeout_and_retries_timeouts(monkeypatch):
    """Without an injected client: requests, with (connect, read) timeouts; a read
    timeout is retried twice with the same key, then reported as temporary."""
    calls = []

    class TimingOutSession:
        def request(self, method, url, **kwargs):
            calls.append((method, url, kwargs["timeout"], kwargs["headers"]["Idempotency-Key"]))
            raise requests.exceptions.ReadTimeout("read timed out")

        def close(self):
            pass

    monkeypatch.setattr(requests, "Session", TimingOutSession)
    monkeypatch.setattr(stripe.RequestsClient, "_sleep_time_seconds", lambda self, n: 0.0)
    processor = StripeProcessor(
        secret_key=fake.SECRET_KEY, webhook_secret=fake.WEBHOOK_SECRET, api_base=fake.API_BASE
    )

    with pytest.raises(TemporaryProcessorError) as caught:
        processor.refund_create(
            payment_id="pi_1", amount_minor=100, metadata={}, idempotency_key="refund-1"
        )

    assert caught.value.code == "connection_error"
    assert calls == [("post", f"{fake.API_BASE}/v1/refunds", (5.0, 30.0), "refund-1")] * 3


def test_a_processor_without_a_secret_key_is_a_configuration_error(http):
    with pytest.raises(ImproperlyConfigured):
        make_processor(http, secret_key="")


def test_get_processor_builds_the_stripe_adapter_from_settings(settings):
    from payments.processors import _build

    settings.STRIPE_SECRET_KEY = fake.SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = fake.WEBHOOK_SECRET
    _build.cache_clear()
    try:
        processor = _build("stripe")
    finally:
        _build.cache_clear()

    assert isinstance(processor, StripeProcessor)
    assert processor.name == "stripe"
    assert processor.livemode is False


def test_a_float_amount_is_refused_before_any_request(processor, http):
    with pytest.raises(TypeError):
        processor.payment_create(
            amount_minor=12.5,
            currency="USD",
            transfer_group="order-7",
            customer_email="buyer@example.com",
            metadata={},
            idempotency_key="payment-7-1",
        )
    assert http.requests == []


# --- Payments ---------------------------------------------------------------------------


def test_payment_create_makes_one_payment_intent_for_the_order(processor, http):
    http.respond(fake.payment_intent())

    payment = processor.payment_create(
        amount_minor=1250,
        currency="USD",
        transfer_group="order-7",
        customer_email="buyer@example.com",
        metadata={"order_id": "7"},
        idempotency_key="payment-7-1",
    )

    request = http.last
    assert_mutating(request, "payment-7-1")
    assert request.path == "/v1/payment_intents"
    assert request.params == {
        "amount": "1250",
        "currency": "usd",
        "transfer_group": "order-7",
        "receipt_email": "buyer@example.com",
        "metadata[order_id]": "7",
        "automatic_payment_methods[enabled]": "true",
    }
    assert "Stripe-Account" not in request.headers
    assert payment == Payment(
        id="pi_3PaYmEnT7",
        status="requires_payment_method",
        amount_minor=1250,
        currency="USD",
        client_secret="pi_3PaYmEnT7_secret_Xyz123",
    )


def test_payment_get_expands_the_charge_and_its_fee(processor, http):
    http.respond(fake.payment_intent(status="succeeded", latest_charge=fake.charge()))

    payment = processor.payment_get(payment_id="pi_3PaYmEnT7")

    request = http.last
    assert_common_headers(request)
    assert request.method == "GET"
    assert request.path == "/v1/payment_intents/pi_3PaYmEnT7"
    assert request.query == {"expand[0]": "latest_charge.balance_transaction"}
    assert request.params == {}
    assert "Idempotency-Key" not in request.headers
    assert payment == Payment(
        id="pi_3PaYmEnT7",
        status="succeeded",
        amount_minor=1250,
        currency="USD",
        client_secret="pi_3PaYmEnT7_secret_Xyz123",
        charge_id="ch_3PaYmEnT7",
        fee_minor=66,
    )


def test_payment_get_reports_the_last_payment_error(processor, http):
    http.respond(
        fake.payment_intent(
            last_payment_error={
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
            },
            latest_charge=fake.charge(status="failed", balance_transaction=None),
        )
    )

    payment = processor.payment_get(payment_id="pi_3PaYmEnT7")

    assert payment.status == "requires_payment_method"
    assert payment.failure_message == "Your card was declined."
    assert payment.charge_id == "ch_3PaYmEnT7"
    assert payment.fee_minor is None


def test_payment_get_copies_the_next_action_the_customer_must_take(processor, http):
    redirect = {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1",
            "return_url": "https://shop.example/orders/7/",
        },
    }
    http.respond(fake.payment_intent(status="requires_action", next_action=redirect))
    http.respond(fake.payment_intent(next_action=None))
    http.respond(fake.payment_intent())  # an answer that leaves the field out
    http.respond(fake.payment_intent(next_action={"redirect_to_url": {}}))  # no type

    waiting = processor.payment_get(payment_id="pi_3PaYmEnT7")
    answers = [processor.payment_get(payment_id="pi_3PaYmEnT7") for _ in range(3)]

    assert waiting.status == "requires_action"
    assert waiting.next_action == redirect
    assert isinstance(waiting.next_action, dict)  # plain JSON, not an SDK object
    assert [payment.next_action for payment in answers] == [None, None, None]


def test_payment_cancel_cancels_the_payment_intent(processor, http):
    http.respond(fake.payment_intent(status="canceled", cancellation_reason="abandoned"))

    payment = processor.payment_cancel(payment_id="pi_3PaYmEnT7", idempotency_key="cancel-7")

    request = http.last
    assert_mutating(request, "cancel-7")
    assert request.path == "/v1/payment_intents/pi_3PaYmEnT7/cancel"
    assert request.params == {}
    assert payment.status == "canceled"
    assert payment.id == "pi_3PaYmEnT7"


def test_refund_create_refunds_the_payment_intent(processor, http):
    http.respond(fake.refund())

    result = processor.refund_create(
        payment_id="pi_3PaYmEnT7",
        amount_minor=500,
        metadata={"refund_id": "12"},
        idempotency_key="refund-12",
    )

    request = http.last
    assert_mutating(request, "refund-12")
    assert request.path == "/v1/refunds"
    assert request.params == {
        "payment_intent": "pi_3PaYmEnT7",
        "amount": "500",
        "metadata[refund_id]": "12",
    }
    assert result == RefundResult(
        id="re_3PaYmEnT7", status="succeeded", amount_minor=500, currency="USD"
    )


def test_a_failed_refund_keeps_its_failure_reason(processor, http):
    http.respond(fake.refund(status="failed", failure_reason="expired_or_canceled_card"))

    result = processor.refund_create(
        payment_id="pi_3PaYmEnT7", amount_minor=500, metadata={}, idempotency_key="refund-13"
    )

    assert result.status == "failed"
    assert result.failure_reason == "expired_or_canceled_card"


# --- Transfers and payouts ----------------------------------------------------------------


def test_transfer_create_moves_a_sellers_share_from_the_charge(processor, http):
    http.respond(fake.transfer())

    result = processor.transfer_create(
        amount_minor=1000,
        currency="USD",
        destination="acct_1SeLLeR3",
        transfer_group="order-7",
        source_charge="ch_3PaYmEnT7",
        metadata={"order_id": "7", "seller_id": "3"},
        idempotency_key="transfer-7-3",
    )

    request = http.last
    assert_mutating(request, "transfer-7-3")
    assert request.path == "/v1/transfers"
    assert request.params == {
        "amount": "1000",
        "currency": "usd",
        "destination": "acct_1SeLLeR3",
        "transfer_group": "order-7",
        "source_transaction": "ch_3PaYmEnT7",
        "metadata[order_id]": "7",
        "metadata[seller_id]": "3",
    }
    assert "Stripe-Account" not in request.headers
    assert result == Transfer(
        id="tr_1SeLLeR3", amount_minor=1000, currency="USD", destination="acct_1SeLLeR3"
    )


def test_transfer_reverse_creates_a_reversal(processor, http):
    http.respond(fake.transfer_reversal())

    result = processor.transfer_reverse(
        transfer_id="tr_1SeLLeR3",
        amount_minor=300,
        metadata={"clawback_id": "12"},
        idempotency_key="clawback-12",
    )

    request = http.last
    assert_mutating(request, "clawback-12")
    assert request.path == "/v1/transfers/tr_1SeLLeR3/reversals"
    assert request.params == {"amount": "300", "metadata[clawback_id]": "12"}
    assert result == TransferReversal(
        id="trr_1ReVeRsAl", transfer_id="tr_1SeLLeR3", amount_minor=300
    )


def test_payout_create_pays_out_on_the_connected_account(processor, http):
    # Asked with expand[]=destination, Stripe answers with the bank account object.
    bank = {"id": "ba_1BaNk", "object": "bank_account", "last4": "6789", "status": "new"}
    http.respond(fake.payout(destination=bank))

    result = processor.payout_create(
        account_id="acct_1SeLLeR3",
        amount_minor=5000,
        currency="USD",
        metadata={"payout_id": "9"},
        idempotency_key="payout-9",
    )

    request = http.last
    assert_mutating(request, "payout-9")
    assert request.path == "/v1/payouts"
    assert request.headers["Stripe-Account"] == "acct_1SeLLeR3"
    assert request.params == {
        "amount": "5000",
        "currency": "usd",
        "metadata[payout_id]": "9",
        "expand[0]": "destination",
    }
    assert result == Payout(
        id="po_1PaYoUt9",
        status="pending",
        amount_minor=5000,
        currency="USD",
        account="acct_1SeLLeR3",
        metadata={"payout_id": "9"},
        arrival_on=date(2026, 1, 4),  # arrival_date 1767484800
        bank_last4="6789",
    )


def test_a_payout_listed_without_its_bank_account_has_no_last4(processor, http):
    http.respond(fake.payout(arrival_date=None))

    result = processor.payout_create(
        account_id="acct_1SeLLeR3",
        amount_minor=5000,
        currency="USD",
        metadata={"payout_id": "9"},
        idempotency_key="payout-9",
    )

    assert (result.arrival_on, result.bank_last4) == (None, "")


def test_a_failed_payout_keeps_its_failure_message(processor, http):
    http.respond(
        fake.payout(
            status="failed",
            failure_code="account_closed",
            failure_message="The bank account has been closed.",
        )
    )

    result = processor.payout_create(
        account_id="acct_1SeLLeR3",
        amount_minor=5000,
        currency="USD",
        metadata={},
        idempotency_key="payout-10",
    )

    assert result.status == "failed"
    assert result.failure_message == "The bank account has been closed."


# --- Sellers' accounts ------------------------------------------------------------------


def test_account_create_makes_an_express_account_on_manual_payouts(processor, http):
    http.respond(fake.account())

    result = processor.account_create(
        email="seller@example.com", country="US", idempotency_key="seller-3-account"
    )

    request = http.last
    assert_mutating(request, "seller-3-account")
    assert request.path == "/v1/accounts"
    assert request.params == {
        "type": "express",
        "country": "US",
        "email": "seller@example.com",
        "capabilities[transfers][requested]": "true",
        "settings[payouts][schedule][interval]": "manual",
    }
    assert result == ConnectedAccount(
        id="acct_1SeLLeR3",
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=False,
        requirements_due=("business_type", "external_account", "tos_acceptance.date"),
    )


def test_account_onboarding_link_creates_an_account_link(processor, http):
    http.respond(fake.account_link())

    link = processor.account_onboarding_link(
        account_id="acct_1SeLLeR3",
        refresh_url="https://shop.example/seller/onboarding/refresh",
        return_url="https://shop.example/seller/onboarding/done",
    )

    request = http.last
    assert_common_headers(request)
    assert request.method == "POST"
    assert request.path == "/v1/account_links"
    assert request.params == {
        "account": "acct_1SeLLeR3",
        "type": "account_onboarding",
        "refresh_url": "https://shop.example/seller/onboarding/refresh",
        "return_url": "https://shop.example/seller/onboarding/done",
    }
    # No key of ours in the interface: the SDK sends a random one (safe retries).
    assert request.headers["Idempotency-Key"]
    assert link == OnboardingLink(
        url="https://connect.stripe.com/setup/e/acct_1SeLLeR3/AbCdEf123",
        expires_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
    )


def test_account_get_maps_the_account_state(processor, http):
    http.respond(
        fake.account(
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            requirements={"currently_due": [], "eventually_due": [], "past_due": []},
        )
    )

    result = processor.account_get(account_id="acct_1SeLLeR3")

    request = http.last
    assert_common_headers(request)
    assert request.method == "GET"
    assert request.path == "/v1/accounts/acct_1SeLLeR3"
    assert "Idempotency-Key" not in request.headers
    assert result == ConnectedAccount(
        id="acct_1SeLLeR3",
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        requirements_due=(),
    )


# --- Events and reconciliation --------------------------------------------------------------


def test_events_list_pages_through_the_platforms_events_oldest_first(processor, http):
    since = datetime(2026, 1, 1, tzinfo=UTC)
    newest = fake.event(id="evt_3", created=1767225900, type="transfer.created")
    middle = fake.event(id="evt_2", created=1767225800, type="charge.succeeded")
    oldest = fake.event(id="evt_1", created=1767225700)
    http.respond(fake.list_of("/v1/events", [newest, middle], has_more=True))
    http.respond(fake.list_of("/v1/events", [oldest], has_more=False))

    events = processor.events_list(since=since)

    first, second = http.requests
    for request in (first, second):
        assert_common_headers(request)
        assert request.method == "GET"
        assert request.path == "/v1/events"
        assert "Stripe-Account" not in request.headers
    assert first.query == {"created[gte]": "1767225600", "limit": "100"}
    assert second.query == {
        "created[gte]": "1767225600",
        "limit": "100",
        "starting_after": "evt_2",
    }
    assert [e.id for e in events] == ["evt_1", "evt_2", "evt_3"]
    assert events[0].type == "payment_intent.succeeded"
    assert events[0].created == datetime(2026, 1, 1, 0, 1, 40, tzinfo=UTC)
    assert type(events[0].data) is dict
    assert events[0].data["id"] == "pi_3PaYmEnT7"
    assert events[0].data["metadata"] == {"order_id": "7"}


def test_events_list_needs_an_aware_datetime(processor, http):
    with pytest.raises(ValueError):
        processor.events_list(since=datetime(2026, 1, 1))
    assert http.requests == []


def test_balance_transactions_list_covers_the_period(processor, http):
    http.respond(
        fake.list_of(
            "/v1/balance_transactions",
            [
                fake.balance_transaction(source=fake.charge(balance_transaction="txn_3PaYmEnT7")),
                fake.balance_transaction(
                    id="txn_1ReFuNd",
                    type="refund",
                    amount=-500,
                    fee=0,
                    net=-500,
                    source="re_3PaYmEnT7",
                    created=1767312000,
                ),
            ],
        )
    )

    transactions = processor.balance_transactions_list(
        since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 1, 2, tzinfo=UTC)
    )

    request = http.last
    assert_common_headers(request)
    assert request.method == "GET"
    assert request.path == "/v1/balance_transactions"
    assert request.query == {
        "created[gte]": "1767225600",
        "created[lt]": "1767312000",
        "limit": "100",
        "expand[0]": "data.source",
    }
    assert transactions == [
        BalanceTransaction(
            id="txn_3PaYmEnT7",
            type="charge",
            amount_minor=1250,
            fee_minor=66,
            net_minor=1184,
            currency="USD",
            source="ch_3PaYmEnT7",
            created=datetime(2026, 1, 1, tzinfo=UTC),
            payment_intent="pi_3PaYmEnT7",
        ),
        BalanceTransaction(
            id="txn_1ReFuNd",
            type="refund",
            amount_minor=-500,
            fee_minor=0,
            net_minor=-500,
            currency="USD",
            source="re_3PaYmEnT7",
            created=datetime(2026, 1, 2, tzinfo=UTC),
        ),
    ]


# --- Errors ------------------------------------------------------------------------------


def create_payment(processor: StripeProcessor) -> Payment:
    return processor.payment_create(
        amount_minor=1250,
        currency="USD",
        transfer_group="order-7",
        customer_email="buyer@example.com",
        metadata={"order_id": "7"},
        idempotency_key="payment-7-1",
    )


def test_a_declined_card_is_card_declined_with_the_message_and_decline_code(processor, http):
    http.respond(fake.card_declined_body(), status=402)

    with pytest.raises(CardDeclined) as caught:
        create_payment(processor)

    assert caught.value.message == "Your card has insufficient funds."
    assert caught.value.code == "insufficient_funds"
    assert caught.value.request_id == "req_fake1"
    assert len(http.requests) == 1


def test_a_rate_limit_is_temporary_and_not_retried_by_the_sdk(processor, http):
    http.respond(fake.rate_limit_body(), status=429)

    with pytest.raises(TemporaryProcessorError) as caught:
        create_payment(processor)

    assert caught.value.code == "rate_limit"
    assert caught.value.request_id == "req_fake1"
    assert len(http.requests) == 1
    assert http.retry_sleeps == []


def test_a_server_error_is_retried_with_the_same_idempotency_key_then_temporary(processor, http):
    for _ in range(3):
        http.respond(fake.api_error_body(), status=500)

    with pytest.raises(TemporaryProcessorError) as caught:
        create_payment(processor)

    assert len(http.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in http.requests} == {"payment-7-1"}
    assert {r.path for r in http.requests} == {"/v1/payment_intents"}
    assert http.retry_sleeps == [1, 2]
    assert caught.value.request_id == "req_fake3"


def test_a_server_error_then_success_returns_the_payment(processor, http):
    http.respond(fake.api_error_body(), status=503)
    http.respond(fake.payment_intent())

    payment = create_payment(processor)

    assert payment.id == "pi_3PaYmEnT7"
    assert [r.headers["Idempotency-Key"] for r in http.requests] == ["payment-7-1"] * 2


def test_a_timeout_is_retried_with_the_same_key_then_temporary(processor, http):
    for _ in range(3):
        http.fail(fake.timeout_error())

    with pytest.raises(TemporaryProcessorError) as caught:
        processor.transfer_create(
            amount_minor=1000,
            currency="USD",
            destination="acct_1SeLLeR3",
            transfer_group="order-7",
            source_charge="ch_3PaYmEnT7",
            metadata={},
            idempotency_key="transfer-7-3",
        )

    assert caught.value.code == "connection_error"
    assert [r.headers["Idempotency-Key"] for r in http.requests] == ["transfer-7-3"] * 3


def test_a_rejected_key_is_an_authentication_error(processor, http):
    http.respond(
        fake.error_body("invalid_request_error", "Invalid API Key provided: sk_test_****Only"),
        status=401,
    )

    with pytest.raises(ProcessorAuthenticationError) as caught:
        processor.account_get(account_id="acct_1SeLLeR3")

    assert caught.value.request_id == "req_fake1"
    assert len(http.requests) == 1


def test_a_forbidden_request_is_an_authentication_error(processor, http):
    http.respond(
        fake.error_body(
            "invalid_request_error",
            "The provided key does not have access to account 'acct_1Other'.",
            code="account_invalid",
        ),
        status=403,
    )

    with pytest.raises(ProcessorAuthenticationError):
        processor.account_get(account_id="acct_1Other")


def test_an_invalid_request_is_logged_with_its_request_id(processor, http, caplog):
    http.respond(
        fake.error_body(
            "invalid_request_error",
            "Insufficient funds in Stripe account.",
            code="balance_insufficient",
            param="amount",
        ),
        status=400,
    )

    with (
        caplog.at_level(logging.ERROR, logger="payments.processors.stripe"),
        pytest.raises(InvalidProcessorRequest) as caught,
    ):
        processor.payout_create(
            account_id="acct_1SeLLeR3",
            amount_minor=999999,
            currency="USD",
            metadata={},
            idempotency_key="payout-11",
        )

    assert caught.value.code == "balance_insufficient"
    assert caught.value.request_id == "req_fake1"
    assert len(http.requests) == 1
    [record] = [r for r in caplog.records if r.name == "payments.processors.stripe"]
    assert record.levelno == logging.ERROR
    assert "req_fake1" in record.getMessage()
    assert "payout_create" in record.getMessage()
    assert fake.SECRET_KEY not in caplog.text


def test_a_reused_idempotency_key_with_other_parameters_is_an_invalid_request(processor, http):
    http.respond(
        fake.error_body(
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters "
            "they were first used with.",
        ),
        status=400,
    )

    with pytest.raises(InvalidProcessorRequest) as caught:
        create_payment(processor)

    assert caught.value.code == "idempotency_error"


def test_a_missing_object_is_an_invalid_request(processor, http):
    http.respond(
        fake.error_body(
            "invalid_request_error",
            "No such payment_intent: 'pi_missing'",
            code="resource_missing",
            param="intent",
        ),
        status=404,
    )

    with pytest.raises(InvalidProcessorRequest) as caught:
        processor.payment_get(payment_id="pi_missing")

    assert caught.value.code == "resource_missing"


# --- Webhooks ------------------------------------------------------------------------------


def webhook_body(**overrides) -> bytes:
    return json.dumps(fake.event(**overrides)).encode()


def test_a_signed_platform_event_parses(processor, http):
    body = webhook_body()

    event = processor.webhook_parse(
        payload=body,
        headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)},
        endpoint="platform",
    )

    assert event.id == "evt_3PaYmEnT7"
    assert event.type == "payment_intent.succeeded"
    assert event.created == datetime(2026, 1, 1, 0, 1, 40, tzinfo=UTC)
    assert event.livemode is False
    assert event.account == ""
    assert type(event.data) is dict
    assert event.data["id"] == "pi_3PaYmEnT7"
    assert event.data["status"] == "succeeded"
    assert event.data["amount"] == 1250
    assert event.data["automatic_payment_methods"] == {"allow_redirects": "always", "enabled": True}
    assert dict(event.previous_attributes) == {}
    assert http.requests == []


def test_a_signed_connect_event_carries_the_connected_account(processor):
    body = webhook_body(
        id="evt_1PaYoUt9",
        type="payout.paid",
        account="acct_1SeLLeR3",
        data={
            "object": fake.payout(status="paid"),
            "previous_attributes": {"status": "in_transit"},
        },
    )

    event = processor.webhook_parse(
        payload=body,
        # Django's request.headers is case-insensitive; a plain dict may not be.
        headers={"stripe-signature": fake.sign(body, fake.CONNECT_WEBHOOK_SECRET)},
        endpoint="connect",
    )

    assert event.account == "acct_1SeLLeR3"
    assert event.type == "payout.paid"
    assert event.data["id"] == "po_1PaYoUt9"
    assert event.data["status"] == "paid"
    assert event.previous_attributes == {"status": "in_transit"}


def test_a_platform_signature_is_refused_at_the_connect_endpoint(processor):
    body = webhook_body(account="acct_1SeLLeR3")

    with pytest.raises(WebhookSignatureError):
        processor.webhook_parse(
            payload=body,
            headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)},
            endpoint="connect",
        )


def test_connect_events_are_refused_without_a_connect_secret(http):
    processor = make_processor(http, connect_webhook_secret="")
    body = webhook_body(account="acct_1SeLLeR3")

    with pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(
            payload=body,
            headers={"Stripe-Signature": fake.sign(body, "")},
            endpoint="connect",
        )

    assert caught.value.code == "endpoint_not_configured"


def test_an_event_signed_with_another_secret_is_refused(processor):
    body = webhook_body()

    with pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(
            payload=body, headers={"Stripe-Signature": fake.sign(body, "whsec_someone_else")}
        )

    assert caught.value.code == "invalid_signature"


def test_a_tampered_body_is_refused(processor):
    body = webhook_body()
    signature = fake.sign(body, fake.WEBHOOK_SECRET)
    tampered = body.replace(b'"amount": 1250', b'"amount": 1')
    assert tampered != body

    with pytest.raises(WebhookSignatureError):
        processor.webhook_parse(payload=tampered, headers={"Stripe-Signature": signature})


def test_a_missing_signature_header_is_refused(processor):
    with pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(payload=webhook_body(), headers={})

    assert caught.value.code == "missing_signature"


def test_a_garbled_signature_header_is_refused(processor):
    with pytest.raises(WebhookSignatureError):
        processor.webhook_parse(payload=webhook_body(), headers={"Stripe-Signature": "nonsense"})


def test_a_signature_older_than_the_tolerance_is_refused(processor, caplog):
    body = webhook_body()
    stale = int(time.time()) - stripe.Webhook.DEFAULT_TOLERANCE - 60
    signature = fake.sign(body, fake.WEBHOOK_SECRET, timestamp=stale)

    with caplog.at_level(logging.INFO), pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(payload=body, headers={"Stripe-Signature": signature})

    assert "tolerance" in caught.value.message
    # What we log names the reason, never the signature or the secret.
    assert signature.split("v1=")[1] not in caplog.text
    assert fake.WEBHOOK_SECRET not in caplog.text


def test_a_signature_within_the_tolerance_is_accepted(processor):
    body = webhook_body()
    recent = int(time.time()) - stripe.Webhook.DEFAULT_TOLERANCE + 60

    event = processor.webhook_parse(
        payload=body,
        headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET, timestamp=recent)},
    )

    assert event.id == "evt_3PaYmEnT7"


def test_a_live_event_is_refused_with_a_test_key(processor):
    body = webhook_body(livemode=True)

    with pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(
            payload=body, headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)}
        )

    assert caught.value.code == "livemode_mismatch"


def test_a_test_event_is_refused_with_a_live_key(http):
    processor = make_processor(http, secret_key=fake.LIVE_SECRET_KEY)
    body = webhook_body(livemode=False)

    with pytest.raises(WebhookSignatureError):
        processor.webhook_parse(
            payload=body, headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)}
        )


def test_a_live_event_is_accepted_with_a_live_key(http):
    processor = make_processor(http, secret_key=fake.LIVE_SECRET_KEY)
    body = webhook_body(livemode=True)

    event = processor.webhook_parse(
        payload=body, headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)}
    )

    assert event.livemode is True


def test_a_signed_payload_that_is_not_an_event_is_refused(processor):
    body = b"\xff\xfe not json"

    with pytest.raises(WebhookSignatureError) as caught:
        processor.webhook_parse(
            payload=body, headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)}
        )

    assert caught.value.code == "invalid_payload"


def test_an_unknown_endpoint_is_a_programming_error(processor):
    body = webhook_body()
    with pytest.raises(ValueError):
        processor.webhook_parse(
            payload=body,
            headers={"Stripe-Signature": fake.sign(body, fake.WEBHOOK_SECRET)},
            endpoint="elsewhere",
        )
