"""Tests of ``FakeStripe`` and ``stripe_rules``: the fake refuses what Stripe refuses.

Driven through the real adapter (``StripeProcessor``) where it has a method for
the call, and through ``stripe.StripeClient`` on the same fake otherwise. Each
rule's source is named in ``stripe_rules.py`` and ``stripe_server.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from payments.processors.base import InvalidProcessorRequest, Payout, TemporaryProcessorError
from payments.processors.stripe import StripeProcessor
from tests.payments.processors import stripe_fake as fake
from tests.payments.processors import stripe_rules as rules
from tests.payments.processors.stripe_fake import RecordingHTTPClient
from tests.payments.processors.stripe_server import (
    IDEMPOTENCY_KEY_TTL_SECONDS,
    FakeStripe,
    processor_on,
)

DAY_AND_A_SECOND = IDEMPOTENCY_KEY_TTL_SECONDS + 1
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def server() -> FakeStripe:
    return FakeStripe(now=1767225600.0)


@pytest.fixture
def processor(server: FakeStripe) -> StripeProcessor:
    return processor_on(server)


@pytest.fixture
def client(server: FakeStripe) -> stripe.StripeClient:
    return server.client()


@pytest.fixture
def seller(server: FakeStripe, processor: StripeProcessor) -> str:
    """An Express account made through the adapter, onboarded."""
    account = processor.account_create(
        email="seller@example.com", country="US", idempotency_key="seller-1"
    )
    server.complete_onboarding(account.id)
    return account.id


@pytest.fixture
def paid(server: FakeStripe, processor: StripeProcessor) -> dict[str, Any]:
    """A 100.00 USD payment made through the adapter and paid (fee 3.20): the intent."""
    payment = processor.payment_create(
        amount_minor=10000,
        currency="USD",
        transfer_group="order-7",
        customer_email="buyer@example.com",
        metadata={"order_id": "7"},
        idempotency_key="payment-7-1",
    )
    return server.succeed_payment(payment.id, fee=320)


@pytest.fixture
def charge(paid: dict[str, Any]) -> str:
    """The charge of ``paid``: the platform has 96.80 USD available."""
    return str(paid["latest_charge"])


def transfer(client: stripe.StripeClient, key: str, **params: Any) -> stripe.Transfer:
    """A transfer through the client (the adapter's transfer call is being reworked)."""
    return client.v1.transfers.create(
        {"currency": "usd", "transfer_group": "order-7", **params}, {"idempotency_key": key}
    )


def payout(processor: StripeProcessor, account: str, amount: int, key: str) -> Payout:
    """A payout on the connected account, through the adapter (Stripe-Account header)."""
    return processor.payout_create(
        account_id=account,
        amount_minor=amount,
        currency="USD",
        metadata={"payout_id": "1"},
        idempotency_key=key,
    )


# --- Parameters -------------------------------------------------------------------------------


def test_an_empty_source_transaction_is_refused_and_the_key_keeps_nothing(
    server, client, seller, charge
):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(
            client, "payout-1-transfer", amount=1000, destination=seller, source_transaction=""
        )

    assert refused.value.http_status == 400
    assert (refused.value.code, refused.value.param) == (
        "parameter_invalid_empty",
        "source_transaction",
    )
    assert server.objects("transfer") == []
    # Refused by validation: nothing was stored under the key, so the fixed request runs.
    done = transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert done.amount == 1000
    assert len(server.objects("transfer")) == 1


def test_an_unknown_parameter_is_refused(client, seller, charge):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, "k", amount=1000, destination=seller, colour="red")

    assert (refused.value.code, refused.value.param) == ("parameter_unknown", "colour")


def test_an_empty_metadata_value_unsets_rather_than_being_refused(server, client, seller, charge):
    done = transfer(
        client, "k", amount=1000, destination=seller, metadata={"order_id": "7", "note": ""}
    )

    assert done.metadata.to_dict() == {"order_id": "7"}


@pytest.mark.parametrize(
    ("method", "path", "params", "headers", "expected"),
    [
        ("POST", "/v1/payouts", {"amount": "100"}, {}, (400, "parameter_missing", "currency")),
        (
            "POST",
            "/v1/payouts",
            {"amount": "100", "currency": "usd", "description": ""},
            {},
            (400, "parameter_invalid_empty", "description"),
        ),
        ("GET", "/v1/events", {"limit": "101"}, {}, (400, "parameter_invalid_integer", "limit")),
        (
            "POST",
            "/v1/transfers",
            {"amount": "0", "currency": "usd", "destination": "acct_1"},
            {},
            (400, "amount_too_small", "amount"),
        ),
        (
            "GET",
            "/v1/balance",
            {},
            {"Stripe-Account": "seller-3"},
            (400, "account_invalid", None),
        ),
        ("POST", "/v1/customers", {"email": "a@example.com"}, {}, (404, None, None)),
    ],
)
def test_check_request_refuses_what_stripe_refuses(method, path, params, headers, expected):
    refusal = rules.check_request(
        method, path, params, {"Authorization": f"Bearer {fake.SECRET_KEY}", **headers}
    )

    assert refusal is not None
    status, body = refusal
    assert (status, body["error"].get("code"), body["error"].get("param")) == expected
    assert body["error"]["type"] == "invalid_request_error"


def test_check_request_accepts_what_the_adapter_sends():
    auth = {"Authorization": f"Bearer {fake.SECRET_KEY}"}
    ok = [
        ("GET", "/v1/payment_intents/pi_1", {"expand[0]": "latest_charge.balance_transaction"}),
        ("GET", "/v1/events", {"created[gte]": "1767225600", "limit": "100", "types[0]": "a.b"}),
        ("POST", "/v1/accounts", {"capabilities[transfers][requested]": "true", "metadata": ""}),
    ]

    for method, path, params in ok:
        assert rules.check_request(method, path, params, auth) is None
    assert rules.check_request("GET", "/v1/balance", {}, {})[0] == 401


def test_an_unexpected_endpoint_fails_loudly(client):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.create({"email": "buyer@example.com"})

    assert refused.value.http_status == 404


def test_the_strict_recording_client_answers_the_refusal_instead_of_the_queue():
    strict, loose = RecordingHTTPClient(), RecordingHTTPClient(strict=False)
    for http in (strict, loose):
        http.respond(fake.transfer())
    params = {"amount": 1000, "currency": "usd", "destination": "acct_1", "source_transaction": ""}

    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.StripeClient(
            fake.SECRET_KEY, base_addresses={"api": fake.API_BASE}, http_client=strict
        ).v1.transfers.create(params)
    answered = stripe.StripeClient(
        fake.SECRET_KEY, base_addresses={"api": fake.API_BASE}, http_client=loose
    ).v1.transfers.create(params)

    assert refused.value.code == "parameter_invalid_empty"
    assert strict.pending == 0  # the refusal took the queued answer's place
    assert answered.id == "tr_1SeLLeR3"


# --- Idempotency ------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_parameters_replays_the_first_result(server, processor):
    first = processor.payment_create(
        amount_minor=2500,
        currency="USD",
        transfer_group="order-8",
        customer_email="buyer@example.com",
        metadata={"order_id": "8"},
        idempotency_key="payment-8-1",
    )
    again = processor.payment_create(
        amount_minor=2500,
        currency="USD",
        transfer_group="order-8",
        customer_email="buyer@example.com",
        metadata={"order_id": "8"},
        idempotency_key="payment-8-1",
    )

    assert again == first
    assert len(server.objects("payment_intent")) == 1


def test_the_same_key_with_other_parameters_is_an_idempotency_error(server, processor):
    def pay(amount: int) -> None:
        processor.payment_create(
            amount_minor=amount,
            currency="USD",
            transfer_group="order-8",
            customer_email="buyer@example.com",
            metadata={"order_id": "8"},
            idempotency_key="payment-8-1",
        )

    pay(2500)
    with pytest.raises(InvalidProcessorRequest) as refused:
        pay(2600)

    assert refused.value.code == "idempotency_error"
    assert len(server.objects("payment_intent")) == 1


def test_a_stored_error_is_replayed_for_24_hours_then_forgotten(server, client, seller):
    with pytest.raises(stripe.InvalidRequestError) as short:
        transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert short.value.code == "balance_insufficient"

    server.credit_platform("usd", 5000)
    with pytest.raises(stripe.InvalidRequestError) as replayed:
        transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert replayed.value.code == "balance_insufficient"
    assert replayed.value.headers["Idempotent-Replayed"] == "true"

    server.advance(DAY_AND_A_SECOND)
    done = transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert done.amount == 1000


def test_after_24_hours_the_same_key_makes_a_second_transfer(server, client, seller, charge):
    first = transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    server.advance(IDEMPOTENCY_KEY_TTL_SECONDS - 1)
    assert transfer(client, "payout-1-transfer", amount=1000, destination=seller).id == first.id

    server.advance(2)
    second = transfer(client, "payout-1-transfer", amount=1000, destination=seller)

    assert second.id != first.id
    assert len(server.objects("transfer")) == 2
    assert server.available("usd", seller) == 2000


def test_a_429_is_not_stored_under_the_key(server, client, seller, charge):
    server.fail_next("POST", "/v1/transfers", status=429)

    with pytest.raises(stripe.RateLimitError):
        transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert server.objects("transfer") == []

    done = transfer(client, "payout-1-transfer", amount=1000, destination=seller)
    assert done.amount == 1000
    assert len(server.objects("transfer")) == 1


def test_a_500_is_stored_and_replayed_to_the_sdks_retries(server, processor):
    server.fail_next("POST", "/v1/payment_intents", status=500)

    def pay() -> None:
        processor.payment_create(
            amount_minor=2500,
            currency="USD",
            transfer_group="order-8",
            customer_email="buyer@example.com",
            metadata={"order_id": "8"},
            idempotency_key="payment-8-1",
        )

    with pytest.raises(TemporaryProcessorError):
        pay()
    # One failure injected; the SDK's two retries with the same key got it replayed.
    assert [r.path for r in server.requests] == ["/v1/payment_intents"] * 3
    assert server.objects("payment_intent") == []

    server.advance(DAY_AND_A_SECOND)
    pay()
    assert len(server.objects("payment_intent")) == 1


def test_a_timeout_after_success_is_answered_by_the_replay(server, processor):
    server.fail_after_next("POST", "/v1/payment_intents")

    payment = processor.payment_create(
        amount_minor=2500,
        currency="USD",
        transfer_group="order-8",
        customer_email="buyer@example.com",
        metadata={"order_id": "8"},
        idempotency_key="payment-8-1",
    )

    assert len(server.requests) == 2
    assert server.retry_sleeps == [1]
    assert [p["id"] for p in server.objects("payment_intent")] == [payment.id]


def test_idempotency_keys_are_kept_per_account(server, client, processor, seller):
    other = server.add_account(email="other@example.com")
    server.credit_account(seller, "usd", 1000)
    server.credit_account(other, "usd", 1000)

    first = payout(processor, seller, 500, "payout-1-payout")
    second = payout(processor, other, 500, "payout-1-payout")

    assert first.id != second.id


# --- Connected accounts -----------------------------------------------------------------------


def test_onboarding_a_transfers_only_account_never_enables_charges(server, processor, seller):
    account = processor.account_get(account_id=seller)

    assert (account.details_submitted, account.payouts_enabled, account.charges_enabled) == (
        True,
        True,
        False,
    )
    assert account.requirements_due == ()
    assert server.get(seller)["capabilities"] == {"transfers": "active"}
    assert [e["type"] for e in server.events_for(seller)] == ["account.updated"]


def test_a_transfer_needs_the_destinations_transfers_capability(server, client, processor, charge):
    account = processor.account_create(email="new@example.com", country="US", idempotency_key="a")

    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, "k", amount=1000, destination=account.id)

    assert refused.value.code == "insufficient_capabilities_for_transfer"
    assert "transfers capability" in str(refused.value.user_message)


def test_a_source_transaction_must_be_a_charge(client, seller):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        transfer(client, "k", amount=1000, destination=seller, source_transaction="ch_nope")

    assert (refused.value.code, refused.value.param) == ("resource_missing", "source_transaction")


def test_a_connected_accounts_payout_is_invisible_without_its_stripe_account(
    server, client, processor, seller
):
    other = server.add_account(email="other@example.com")
    server.credit_account(seller, "usd", 1000)
    made = payout(processor, seller, 1000, "payout-1-payout")

    for options in ({}, {"stripe_account": other}):
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.payouts.retrieve(made.id, options=options)
        assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert client.v1.payouts.list().data == []

    found = client.v1.payouts.retrieve(made.id, options={"stripe_account": seller})
    assert (found.status, found.amount) == ("pending", 1000)
    assert server.available("usd", seller) == 0


def test_a_payout_needs_the_accounts_available_balance(server, client, processor, seller):
    server.credit_account(seller, "usd", 999)

    with pytest.raises(InvalidProcessorRequest) as refused:
        payout(processor, seller, 1000, "payout-1-payout")

    assert refused.value.code == "balance_insufficient"
    assert server.objects("payout", account=seller) == []


def test_refused_payouts_answer_the_configured_code(server, client, processor, seller):
    server.credit_account(seller, "usd", 1000)
    server.refuse_payouts(seller, code="account_closed", message="The bank account is closed.")

    with pytest.raises(InvalidProcessorRequest) as refused:
        payout(processor, seller, 1000, "payout-1-payout")

    assert refused.value.code == "account_closed"
    assert server.available("usd", seller) == 1000


def test_a_failed_payout_after_paid_returns_the_money(server, client, processor, seller):
    server.credit_account(seller, "usd", 1000)
    made = payout(processor, seller, 1000, "payout-1-payout")

    server.payout_paid(made.id)
    failed = server.payout_failed(made.id, code="account_closed", message="Closed.")

    assert server.available("usd", seller) == 1000
    assert (failed["type"], failed["account"]) == ("payout.failed", seller)
    assert failed["data"]["previous_attributes"] == {"status": "paid"}
    found = client.v1.payouts.retrieve(made.id, options={"stripe_account": seller})
    assert (found.status, found.failure_code) == ("failed", "account_closed")
    assert [e["type"] for e in server.events_for(seller)][-2:] == ["payout.paid", "payout.failed"]


def test_the_balance_is_per_account(server, client, seller, charge):
    transfer(client, "k", amount=4000, destination=seller)

    platform = client.v1.balance.retrieve()
    connected = client.v1.balance.retrieve(options={"stripe_account": seller})

    assert [(b.amount, b.currency) for b in platform.available] == [(9680 - 4000, "usd")]
    assert [(b.amount, b.currency) for b in connected.available] == [(4000, "usd")]


# --- Transfers and reversals ------------------------------------------------------------------


def test_a_reversal_beyond_the_connected_balance_is_balance_insufficient(
    server, client, processor, seller, charge
):
    made = transfer(client, "payout-1-transfer", amount=5000, destination=seller)
    payout(processor, seller, 4000, "payout-1-payout")  # the seller's money left for the bank

    with pytest.raises(InvalidProcessorRequest) as refused:
        processor.transfer_reverse(
            transfer_id=made.id, amount_minor=2000, metadata={}, idempotency_key="reverse-1"
        )
    assert refused.value.code == "balance_insufficient"
    assert server.get(made.id)["amount_reversed"] == 0

    reversal = processor.transfer_reverse(
        transfer_id=made.id, amount_minor=1000, metadata={}, idempotency_key="reverse-2"
    )
    assert (reversal.transfer_id, reversal.amount_minor) == (made.id, 1000)
    assert server.get(made.id)["amount_reversed"] == 1000
    assert (server.available("usd", seller), server.available("usd")) == (0, 9680 - 5000 + 1000)
    listed = client.v1.transfers.reversals.list(made.id)
    assert [r.id for r in listed.data] == [reversal.id]


def test_a_reversal_beyond_what_is_left_of_the_transfer_is_refused(
    server, client, processor, seller, charge
):
    made = transfer(client, "k", amount=1000, destination=seller)
    server.credit_account(seller, "usd", 5000)

    with pytest.raises(InvalidProcessorRequest) as refused:
        processor.transfer_reverse(
            transfer_id=made.id, amount_minor=1001, metadata={}, idempotency_key="reverse-1"
        )

    assert refused.value.code == "amount_too_large"


def test_transfers_are_listed_newest_first_with_filters(server, client, seller, charge):
    first = transfer(client, "k1", amount=1000, destination=seller)
    server.advance(60)
    second = transfer(client, "k2", amount=2000, destination=seller, transfer_group="order-9")

    everything = client.v1.transfers.list()
    grouped = client.v1.transfers.list({"transfer_group": "order-9"})
    recent = client.v1.transfers.list({"created": {"gte": second.created}})

    assert [t.id for t in everything.data] == [second.id, first.id]
    assert [t.id for t in grouped.data] == [second.id]
    assert [t.id for t in recent.data] == [second.id]


# --- Payments, refunds, events ------------------------------------------------------------------


def test_the_charge_is_expanded_only_when_asked(client, processor, paid, charge):
    payment = processor.payment_get(payment_id=paid["id"])
    plain = client.v1.payment_intents.retrieve(paid["id"])

    assert (payment.status, payment.charge_id, payment.fee_minor) == ("succeeded", charge, 320)
    assert plain.latest_charge == charge
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.retrieve(paid["id"], {"expand": ["amount"]})
    assert refused.value.param == "expand"


def test_a_refund_beyond_the_charge_is_amount_too_large(server, processor, paid):
    refund = processor.refund_create(
        payment_id=paid["id"], amount_minor=6000, metadata={}, idempotency_key="refund-1"
    )
    assert (refund.status, refund.amount_minor) == ("succeeded", 6000)

    with pytest.raises(InvalidProcessorRequest) as refused:
        processor.refund_create(
            payment_id=paid["id"], amount_minor=4001, metadata={}, idempotency_key="refund-2"
        )

    assert refused.value.code == "amount_too_large"
    assert server.available("usd") == 9680 - 6000


def test_a_succeeded_payment_cannot_be_canceled(server, processor, paid):
    with pytest.raises(InvalidProcessorRequest) as refused:
        processor.payment_cancel(payment_id=paid["id"], idempotency_key="cancel-1")

    assert refused.value.code == "payment_intent_unexpected_state"
    assert server.get(paid["id"])["status"] == "succeeded"


def test_events_are_listed_for_the_requesting_account_only(server, client, processor, seller):
    server.credit_account(seller, "usd", 1000)
    payout(processor, seller, 1000, "payout-1-payout")
    for n in range(3):
        intent = processor.payment_create(
            amount_minor=1000 + n,
            currency="USD",
            transfer_group=f"order-{n}",
            customer_email="buyer@example.com",
            metadata={},
            idempotency_key=f"payment-{n}-1",
        )
        server.succeed_payment(intent.id)
        server.advance(10)

    platform = processor.events_list(since=LONG_AGO)
    connected = list(
        client.v1.events.list({"limit": 1}, {"stripe_account": seller}).auto_paging_iter()
    )
    paged = list(client.v1.events.list({"limit": 2}).auto_paging_iter())

    assert [e.type for e in platform] == ["payment_intent.succeeded"] * 3
    assert [e.data["amount"] for e in platform] == [1000, 1001, 1002]  # oldest first
    assert [e.type for e in connected] == ["payout.created", "account.updated"]
    assert {e.account for e in connected} == {seller}
    assert len(paged) == 3


def test_balance_transactions_name_the_payment_behind_a_charge(server, processor, paid, charge):
    transactions = processor.balance_transactions_list(
        since=LONG_AGO, until=datetime(2030, 1, 1, tzinfo=UTC)
    )

    (charged,) = transactions
    assert (charged.type, charged.amount_minor, charged.fee_minor, charged.net_minor) == (
        "charge",
        10000,
        320,
        9680,
    )
    assert (charged.source, charged.payment_intent) == (charge, paid["id"])


def test_a_signed_delivery_is_accepted_by_the_adapters_webhook_check(
    server, client, processor, seller
):
    server.credit_account(seller, "usd", 1000)
    made = payout(processor, seller, 1000, "payout-1-payout")
    event = server.payout_paid(made.id)

    payload, headers = server.signed_delivery(event, endpoint="connect")
    parsed = processor.webhook_parse(payload=payload, headers=headers, endpoint="connect")

    assert (parsed.type, parsed.account, parsed.data["id"]) == ("payout.paid", seller, made.id)
