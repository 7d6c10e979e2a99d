"""When the database drops or refuses connections, every kind of request fails cleanly:
a 503 with Retry-After (a page for people, problem JSON for the API and processors),
no traceback, nothing written. The real restart is in tests/faults/."""

import json
import sqlite3

import psycopg
import pytest
from django.db import OperationalError, connection
from django.urls import reverse

from marketplace.kernel.unavailable import database_unavailable
from marketplace.views.errors import server_error
from payments.models import WebhookEvent
from payments.processors.local import SIGNATURE_HEADER, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_down(client):
    """Every SQL statement fails as it does while PostgreSQL restarts."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("server closed the connection") from psycopg.OperationalError(
            "server closed the connection unexpectedly"
        )

    client.raise_request_exception = False
    with connection.execute_wrapper(refuse):
        yield


def test_a_page_answers_503_with_a_page_for_people(client, database_down):
    response = client.get(reverse("marketplace:home"))

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert "Back in a moment" in page and "may not have gone through" in page
    assert "Traceback" not in page and "OperationalError" not in page


def test_a_signed_in_page_fails_the_same_way_in_the_session_middleware(client, customer):
    client.force_login(customer)

    def refuse(execute, sql, params, many, context):
        raise OperationalError("starting up") from psycopg.errors.CannotConnectNow(
            "the database system is starting up"
        )

    client.raise_request_exception = False
    with connection.execute_wrapper(refuse):
        response = client.get(reverse("marketplace:cart"))

    assert response.status_code == 503
    assert "Back in a moment" in response.content.decode()


def test_the_api_answers_a_503_problem(client, database_down):
    response = client.get("/api/v1/products/")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "unavailable"


def test_a_webhook_gets_a_503_so_the_processor_sends_it_again(client):
    payload = json.dumps(
        {"id": "evt_503", "type": "customer.created", "created": 1, "data": {"object": {}}}
    ).encode()

    def refuse(execute, sql, params, many, context):
        raise OperationalError("server closed the connection") from psycopg.OperationalError(
            "server closed the connection unexpectedly"
        )

    client.raise_request_exception = False
    with connection.execute_wrapper(refuse):
        response = client.post(
            reverse("payments:webhook", args=["local"]),
            payload,
            content_type="application/json",
            headers={SIGNATURE_HEADER: sign(payload)},
        )

    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "cause",
    [
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.DiskFull("could not extend file"),
        sqlite3.OperationalError("no such table: marketplace_product"),
    ],
)
def test_other_database_errors_are_500s_not_retryable_503s(cause):
    exc = OperationalError(str(cause))
    exc.__cause__ = cause

    assert not database_unavailable(exc)


def test_any_other_error_is_still_a_plain_500(rf):
    request = rf.get("/api/v1/products/")
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        api = server_error(request)
        page = server_error(rf.get("/"))

    assert api.status_code == 500 and json.loads(api.content)["code"] == "server_error"
    assert "Retry-After" not in api
    assert page.status_code == 500 and "Something went wrong" in page.content.decode()
