"""Schemathesis against the published schema, through the WSGI app, on a seeded
marketplace, as an operator, a seller and a customer with real tokens.

Phases: stateless (generated requests for every operation, one at a time), malformed
(requests that break the schema on purpose) and stateful (chains that follow links:
list or create, then read, change and act on what was listed or created). No answer
may be a server error or break the schema (status code documented, content type,
headers, body). Webhook deliveries the fuzzer causes never leave loopback. The totals
are printed at the end of the run and written to var/fuzz-totals.json.
"""

import contextlib
import ipaddress

import pytest
import pytest_socket
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode
from schemathesis.generation.stateful.state_machine import normalize_name

from accounts.tokens import api_token_create
from payments.collection.refund_requests import refund_request_create
from payments.integrations.webhooks import (
    TemporaryDeliveryError,
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_endpoint_test,
)
from payments.models import Payout, WebhookDelivery
from payments.payouts.holds import seller_order_hold_release
from tests.api import fuzz_support
from tests.api.fuzz_support import (
    FENCE,
    MALFORMED_EXAMPLES,
    ROLES,
    STATEFUL_ROLES,
    STATEFUL_SCENARIOS,
    STATEFUL_STEPS,
    STATELESS_EXAMPLES,
    TOTALS,
    TotalsReport,
    deliveries_to,
    fake_resolver,
    is_loopback,
    published_schema,
)
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.receivers import Receiver

SCHEMA = published_schema()
LABELS = [result.ok().label for result in SCHEMA.get_all_operations()]

# Built-in checks left out, everywhere:
# - positive_data_acceptance: a schema-valid body may still break a business rule (a
#   seller rule without a seller, cancelling a paid order): those answer 4xx with the
#   reason, by design. Every 4xx must still be documented and well-formed (the other
#   checks), and no answer may be a 5xx.
EXCLUDED_CHECKS = [positive_data_acceptance]
# Malformed requests are checked the same way, negative_data_rejection included: a
# value the schema forbids must be refused with a documented 4xx.
MALFORMED_EXCLUDED = [positive_data_acceptance]


@pytest.fixture(autouse=True, scope="module")
def _totals_report(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin(TotalsReport.name):
        manager.register(TotalsReport(), TotalsReport.name)


@pytest.fixture(scope="module")
def local_receiver():
    """Stands in for every integrator's server (one for the module: stopping a server
    takes up to half a second)."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def seeded(
    db,
    settings,
    monkeypatch,
    network_guard,
    local_receiver,
    seller,
    other_seller,
    customer,
    operator,
    category,
):
    """Two sellers with payouts enabled, a product and a paid order each (its hold
    released, a payout, a refund request from the customer), a webhook endpoint each
    and one for the operator. Yields the tokens' headers by role.

    Webhooks: the production address policy applies (https, public addresses only);
    made-up host names resolve to a public stand-in; the transport's last hop goes to
    a local receiver. At the end, the deliveries the fuzzer's requests queued are sent
    as the worker would, and the test fails if anything tried to leave loopback."""
    from rest_framework.throttling import SimpleRateThrottle

    settings.ALLOWED_HOSTS = ["*"]
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False
    # Requests go through the WSGI handler, which closes the database connection
    # after each request; the test's transaction needs it open (as Django's own
    # test client arranges).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None})
    received_before = len(local_receiver.requests)
    fake_resolver(monkeypatch)
    deliveries_to(local_receiver, monkeypatch)

    CommissionRuleFactory(percentage_bps=1000)
    for who in (seller, other_seller):
        enable_payouts(who)
        ProductFactory(seller=who, category=category, stock=1_000_000)
        order = paid_order([(who, 5000, 1)], customer=customer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        Payout.objects.create(seller=who, currency="USD", amount_minor=4500, period="seed")
        refund_request_create(customer=customer, order_line=order.lines.get(), reason="Broken")
        webhook_endpoint_create(
            owner=who.user, url=f"https://hooks.{who.slug}.example/in", events=["order.paid"]
        )
    webhook_endpoint_create(
        owner=operator, url="https://hooks.operator.example/in", events=["order.paid"]
    )
    users = {"operator": operator, "seller": seller.user, "customer": customer}
    try:
        yield {
            role: {"Authorization": f"Bearer {api_token_create(user=user, name='fuzz').raw}"}
            for role, user in users.items()
        }
        _run_the_worker()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        FENCE.delivered += len(local_receiver.requests) - received_before
        FENCE.attempts.extend(network_guard.hosts())
        FENCE.blocked.extend(network_guard.blocked)
    outside = [host for host in network_guard.hosts() if not is_loopback(host)]
    assert outside == [], f"connections beyond loopback: {outside}"


def _run_the_worker():
    """Send every delivery the fuzzer's requests queued, as the worker would (on-commit
    callbacks never run inside the test's transaction, so nothing else sends them)."""
    pending = WebhookDelivery.objects.filter(
        status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING]
    ).values_list("pk", flat=True)
    for delivery_id in list(pending):
        with contextlib.suppress(TemporaryDeliveryError):  # the worker would retry later
            webhook_delivery_attempt(delivery_id=delivery_id)


def test_the_schema_has_every_operation():
    assert len(LABELS) >= 75


def test_the_stateful_phase_follows_links_from_creation_to_actions():
    """The links (``fuzz_support.with_links`` and those schemathesis infers) chain
    creation and listing to the operations on what was created or listed."""
    transitions = SCHEMA.as_state_machine()._transitions.operations
    links = {
        (source, link.target.label)
        for source, found in transitions.items()
        for link in found.outgoing
    }
    expected = {
        ("POST /api/v1/products/", "GET /api/v1/products/{id}/"),
        ("POST /api/v1/products/", "PATCH /api/v1/products/{id}/"),
        ("POST /api/v1/orders/", "GET /api/v1/orders/{id}/"),
        ("POST /api/v1/orders/", "POST /api/v1/orders/{id}/cancel/"),
        ("POST /api/v1/cart/checkout/", "GET /api/v1/orders/{id}/"),
        ("POST /api/v1/webhook-endpoints/", "GET /api/v1/webhook-endpoints/{id}/"),
        ("POST /api/v1/webhook-endpoints/", "POST /api/v1/webhook-endpoints/{id}/test/"),
        ("POST /api/v1/webhook-endpoints/", "GET /api/v1/webhook-endpoints/{id}/deliveries/"),
        ("GET /api/v1/payouts/", "POST /api/v1/payouts/{id}/approve/"),
        ("GET /api/v1/payouts/", "POST /api/v1/payouts/{id}/hold/"),
        ("GET /api/v1/refund-requests/", "POST /api/v1/refund-requests/{id}/approve/"),
        ("GET /api/v1/refund-requests/", "POST /api/v1/refund-requests/{id}/decline/"),
        ("POST /api/v1/webhook-endpoints/", "DELETE /api/v1/webhook-endpoints/{id}/"),
        ("POST /api/v1/orders/", "POST /api/v1/orders/{id}/payment/"),
        ("POST /api/v1/cart/checkout/", "POST /api/v1/orders/{id}/payment/"),
        ("GET /api/v1/products/", "POST /api/v1/cart/items/"),
        ("POST /api/v1/cart/items/", "POST /api/v1/cart/checkout/"),
    }
    assert expected <= links, sorted(expected - links)


# Addresses a fuzzer meets: the issue's IPv6 forms that embed a private IPv4, and URLs
# read in earlier answers (a Location header, a list's relative url).
ISSUE_ADDRESSES = [
    "https://[64:ff9b::a00:1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[::127.0.0.1]/",
    "https://[2002:7f00:1::1]/",
]


def test_webhooks_the_fuzzer_registers_are_delivered_on_loopback_only(
    seeded, client, local_receiver, network_guard, seller
):
    """The fuzzer's webhook path, walked on purpose: the issue's addresses and URLs
    read in earlier answers are refused; a made-up host is accepted, its ping and the
    worker's delivery of an event are pinned to the public stand-in and land on the
    local receiver; nothing connects beyond loopback."""
    operator = seeded["operator"]
    url = "/api/v1/webhook-endpoints/"

    def register(address):
        body = {"url": address, "events": ["order.paid"]}
        return client.post(url, body, content_type="application/json", headers=operator)

    made_up = register("https://hooks.fuzzed-integrator.example/in")
    assert made_up.status_code == 201, made_up.content
    earlier = [made_up.headers.get("Location") or "http://testserver/", "/api/v1/events/"]
    for address in ISSUE_ADDRESSES + earlier:
        refused = register(address)
        assert refused.status_code == 400, (address, refused.status_code)
        assert refused.headers["Content-Type"].startswith("application/problem+json")
    received = len(local_receiver.requests)
    pinned = len(FENCE.pinned)

    ping = client.post(f"{url}{made_up.json()['id']}/test/", headers=operator)
    paid_order([(seller, 1000, 1)])  # order.paid for every endpoint that wants it
    _run_the_worker()

    assert ping.status_code == 200, ping.content
    hosts = {request.headers["Host"] for request in local_receiver.requests[received:]}
    assert "hooks.fuzzed-integrator.example" in hosts
    assert set(FENCE.pinned[pinned:]) == {fuzz_support.PUBLIC_STAND_IN}
    assert [h for h in network_guard.hosts() if not is_loopback(h)] == []


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect")
def test_without_the_local_receiver_a_fuzzed_delivery_is_stopped_at_the_guard(
    db, settings, monkeypatch, network_guard, operator
):
    """The fence's back stop: a made-up host passes the policy (it resolves to the public
    stand-in), and the transport's connection to it is refused by the socket guard, not
    made."""
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False
    fake_resolver(monkeypatch)
    endpoint = webhook_endpoint_create(
        owner=operator, url="https://hooks.leak.example/in", events=["order.paid"]
    )

    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        webhook_endpoint_test(endpoint=endpoint)

    refused = network_guard.take_blocked()  # taken, or the guard fails this test
    assert len(refused) == 1 and fuzz_support.PUBLIC_STAND_IN in refused[0]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("label", LABELS)
def test_every_operation_answers_within_its_schema(seeded, role, label):
    """Schema-valid requests: never a 5xx, every answer documented and well-formed."""
    headers = seeded[role]
    operation = SCHEMA.find_operation_by_label(label)

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=STATELESS_EXAMPLES[role],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers_within_schema(case):
        response = case.call(headers=headers)
        TOTALS.record(phase="stateless", role=role, label=label, status_code=response.status_code)
        try:
            case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # a check's FailureGroup too
            TOTALS.record_failure(phase="stateless", role=role, error=exc)
            raise

    answers_within_schema()


@pytest.mark.parametrize("role", list(MALFORMED_EXAMPLES))
@pytest.mark.parametrize("label", LABELS)
def test_malformed_requests_get_no_server_error(seeded, role, label):
    """Requests that break the schema (a wrong type, a missing field, a bad format):
    never a 5xx, and the refusal is documented and well-formed."""
    headers = seeded[role]
    operation = SCHEMA.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    @hypothesis_settings(
        max_examples=MALFORMED_EXAMPLES[role],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def refused_within_schema(case):
        response = case.call(headers=headers)
        TOTALS.record(phase="malformed", role=role, label=label, status_code=response.status_code)
        try:
            case.validate_response(response, headers=headers, excluded_checks=MALFORMED_EXCLUDED)
        except (Exception, BaseExceptionGroup) as exc:
            TOTALS.record_failure(phase="malformed", role=role, error=exc)
            raise

    with contextlib.suppress(Unsatisfiable):  # nothing here can be broken (a lone slug)
        refused_within_schema()


def _workflow(role, headers, failures):
    """The state machine schemathesis builds from the links, as ``role``: each scenario
    runs in a savepoint rolled back at its end (after the worker has sent what it
    queued), so every scenario starts from the seeded marketplace."""
    machine = SCHEMA.as_state_machine()
    # Scenarios start at collections (a list, a creation). An operation on one member
    # (/things/{id}/...) is reached through a link from an answer that named the member:
    # random ids are the stateless phase's part, and here they would only eat the steps.
    random_members = {
        normalize_name(f"RANDOM -> {label}") for label in machine._root_labels if "{" in label
    } & machine.root_rules

    class Workflow(machine):
        root_rules = machine.root_rules - random_members
        _root_labels = frozenset(label for label in machine._root_labels if "{" not in label)

        def setup(self):
            super().setup()
            TOTALS.scenarios[role] += 1
            self.savepoint = transaction.savepoint()

        def teardown(self):
            try:
                _run_the_worker()
            finally:
                transaction.savepoint_rollback(self.savepoint)
            super().teardown()

        def get_call_kwargs(self, case):
            return {"headers": headers}

        def after_call(self, response, case):
            super().after_call(response, case)
            TOTALS.record(
                phase="stateful",
                role=role,
                label=case.operation.label,
                status_code=response.status_code,
            )

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            try:
                case.validate_response(
                    response,
                    additional_checks=additional_checks,
                    excluded_checks=EXCLUDED_CHECKS,
                    headers=headers,
                    transport_kwargs=kwargs or None,
                    recorder=self.recorder,
                )
            except (Exception, BaseExceptionGroup) as exc:  # a check's FailureGroup too
                TOTALS.record_failure(phase="stateful", role=role, error=exc)
                failures.append(exc)
                raise

    for name in random_members:
        setattr(Workflow, name, None)  # no longer a rule
    return Workflow


@pytest.mark.parametrize("role", STATEFUL_ROLES)
def test_linked_operations_answer_within_the_schema(seeded, role):
    failures = []
    try:
        _workflow(role, seeded[role], failures).run(
            settings=hypothesis_settings(
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
        )
    except FlakyStrategyDefinition:
        TOTALS.cut_short[role] += 1
        # Hypothesis replays scenarios; against a database a replay can take another
        # turn (ids differ, so does what a link extracts) and Hypothesis then calls the
        # data generation flaky and stops. That alone is no finding (schemathesis's own
        # runner counts it as a pass); an answer a check refused on the way is.
        if failures:
            raise failures[0] from None


def test_no_fuzzed_request_reached_beyond_loopback():
    """Across the session (this test runs last in the module): whatever address the
    fuzzer registered, no connection (test pings, the worker's deliveries) went further
    than 127.0.0.1 / ::1, and every address a delivery was pinned to is public."""
    assert FENCE.outside() == []
    assert all(ipaddress.ip_address(address).is_global for address in FENCE.pinned)
