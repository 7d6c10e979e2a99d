"""Schemathesis: generated requests for every operation of the published schema, as
an operator with a real token, against a seeded database. No answer may be a server
error or break the schema (status codes, content types, bodies)."""

import json
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

from accounts.tokens import api_token_create
from payments.holds import seller_order_hold_release
from payments.models import Payout
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts, paid_order

EXAMPLES = 25 if os.environ.get("CI") else 5


def _published_schema():
    """The schema the API serves at /api/v1/schema/, bound to the WSGI app."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from marketplace.wsgi import application

    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(document)))
    loaded.app = application
    return loaded


SCHEMA = _published_schema()
LABELS = [result.ok().label for result in SCHEMA.get_all_operations()]


@pytest.fixture
def seeded(db, settings, monkeypatch, seller, other_seller, customer, category):
    from rest_framework.throttling import SimpleRateThrottle

    settings.ALLOWED_HOSTS = ["*"]
    # Requests go through the WSGI handler, which closes the database connection
    # after each request; the test's transaction needs it open (as Django's own
    # test client arranges).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None})
    # Webhook endpoints get made-up addresses: resolve them to a public
    # address and answer their test pings here, so nothing leaves this machine.
    monkeypatch.setattr(
        "payments.outbound_webhooks.socket.getaddrinfo",
        lambda *args, **kwargs: [(2, 1, 6, "", ("93.184.215.14", 443))],
    )
    monkeypatch.setattr(
        "payments.outbound_webhooks.requests.post",
        lambda *args, **kwargs: type("Answer", (), {"status_code": 204, "text": ""})(),
    )
    CommissionRuleFactory(percentage_bps=1000)
    for who in (seller, other_seller):
        enable_payouts(who)
        ProductFactory(seller=who, category=category)
        order = paid_order([(who, 5000, 1)], customer=customer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        Payout.objects.create(seller=who, currency="USD", amount_minor=4500, period="seed")
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_schema_has_every_operation():
    assert len(LABELS) >= 40


@pytest.mark.parametrize("label", LABELS)
def test_every_operation_answers_within_its_schema(seeded, operator, label):
    headers = {"Authorization": f"Bearer {api_token_create(user=operator, name='fuzz').raw}"}
    operation = SCHEMA.find_operation_by_label(label)

    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def answers_within_schema(case):
        # A schema-valid body may still break a business rule (a seller rule
        # without a seller): those answer 400 with the reason, by design.
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    answers_within_schema()
