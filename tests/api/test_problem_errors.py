"""Every API error is problem+json with a code, the field at fault, a doc_url and the
request id: the catch-all 404, CSRF, unhandled exceptions, 405, 406, 415 and 429."""

import logging

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from marketplace.kernel.api.errors import ERROR_CODES
from tests.factories import ProductFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["doc_url"] == f"/api/v1/errors/#{code}" == body["type"]
    assert body["request_id"] == response["Request-Id"]
    assert body["title"] and body["detail"]
    return body


def test_a_post_with_a_token_to_an_unknown_api_address_is_a_404_problem(api_as, customer):
    # Finding 3: the catch-all was not CSRF-exempt, so this was a 403 HTML page.
    response = api_as(customer).post("/api/v1/orders/0.5/cancel/", {}, format="json")

    assert_problem(response, 404, "not_found")


def test_a_session_write_without_its_csrf_token_is_a_csrf_failed_problem(customer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer)

    through_drf = client.post(reverse("api:cart-items"), {}, content_type="application/json")
    through_django = client.post("/api/v1/no-such-thing/", {}, content_type="application/json")

    assert_problem(through_drf, 403, "csrf_failed")
    # The catch-all is CSRF-exempt, so it answers its own 404 problem.
    assert_problem(through_django, 404, "not_found")


def test_a_csrf_failure_on_an_api_path_outside_drf_is_a_problem_and_the_site_keeps_its_page(
    rf,
):
    from marketplace.views.errors import csrf_failure

    api = csrf_failure(rf.post("/api/v1/anything/"), reason="CSRF cookie not set.")
    page = csrf_failure(rf.post("/accounts/login/"), reason="CSRF cookie not set.")

    assert api.status_code == page.status_code == 403
    assert api["Content-Type"] == PROBLEM
    assert b'"code": "csrf_failed"' in api.content
    assert page["Content-Type"].startswith("text/html")


def test_the_site_login_page_still_refuses_a_post_without_csrf_with_html(customer):
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("accounts:login"), {"username": "x", "password": "y"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert response["Request-Id"].startswith("req_")


def test_an_unhandled_exception_in_the_api_is_a_logged_500_problem_even_with_debug_on(
    api_as, customer, seller, monkeypatch, caplog
):
    def boom(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("marketplace.api.views.order_cancel", boom)
    order = paid_order([(seller, 1000, 1)], customer=customer)
    client = api_as(customer)
    client.raise_request_exception = False

    with override_settings(DEBUG=True), caplog.at_level(logging.ERROR):
        response = client.post(
            reverse("api:order-cancel", args=[order.pk]), HTTP_X_REQUEST_ID="req_test_500"
        )

    body = assert_problem(response, 500, "server_error")
    assert body["request_id"] == "req_test_500"
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.request_id == "req_test_500"
    assert "a bug" not in response.content.decode()


def test_the_last_resort_500_of_an_api_path_is_a_problem_and_the_site_keeps_its_page(rf):
    from marketplace.views.errors import server_error

    api = server_error(rf.get("/api/v1/orders/"))
    page = server_error(rf.get("/"))

    assert api["Content-Type"] == PROBLEM and b'"doc_url"' in api.content
    assert page["Content-Type"].startswith("text/html")


def test_a_wrong_method_is_a_405_problem(api_as, customer):
    response = api_as(customer).delete(reverse("api:order-list"))

    assert_problem(response, 405, "method_not_allowed")


def test_an_unacceptable_accept_header_is_a_406_problem(api_as, customer):
    response = api_as(customer).get(reverse("api:order-list"), HTTP_ACCEPT="application/xml")

    assert_problem(response, 406, "not_acceptable")


def test_a_body_that_is_not_json_is_a_415_problem(api_as, customer):
    response = api_as(customer).post(
        reverse("api:order-list"), "items=1", content_type="application/x-www-form-urlencoded"
    )

    assert_problem(response, 415, "unsupported_media_type")


def test_a_body_that_is_broken_json_is_a_400_parse_error(api_as, customer):
    response = api_as(customer).post(
        reverse("api:order-list"), "{nope", content_type="application/json"
    )

    assert_problem(response, 400, "parse_error")


def test_throttling_is_a_429_problem_with_retry_after(api, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "2/min")
    url = reverse("api:product-list")
    for _ in range(2):
        assert api.get(url).status_code == 200

    response = api.get(url)

    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_a_validation_error_names_the_first_field_at_fault_as_stripe_does(api_as, customer):
    product = ProductFactory(stock=5)
    body = {
        "items": [
            {"product": product.pk, "quantity": 1},
            {"product": product.pk, "quantity": "many"},
        ],
        "shipping": {"name": "Ada"},
    }

    response = api_as(customer).post(reverse("api:order-list"), body, format="json")

    problem = assert_problem(response, 400, "invalid")
    assert problem["param"] == "items[1][quantity]"
    assert set(problem["errors"]) == {"items", "shipping"}


def test_an_application_error_carries_its_param(api_as, customer):
    product = ProductFactory(stock=1)
    body = {
        "items": [{"product": product.pk, "quantity": 2}],
        "shipping": {
            "name": "Ada Lovelace",
            "line1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        },
    }

    response = api_as(customer).post(reverse("api:order-list"), body, format="json")

    problem = assert_problem(response, 409, "out_of_stock")
    assert problem.get("param") in (None, "items", "items[0][quantity]")


def test_every_code_has_its_entry_on_the_error_codes_page(client):
    page = client.get("/api/v1/errors/")

    assert page.status_code == 200
    html = page.content.decode()
    for code in ERROR_CODES:
        assert f'id="{code}"' in html


@override_settings(DEBUG=False)
def test_the_error_codes_page_is_reachable_without_signing_in(client):
    assert client.get("/api/v1/errors/", secure=True).status_code == 200


def test_the_error_codes_page_shows_backticked_names_as_code_and_escapes_the_rest():
    from marketplace.views.errors import _code_spans

    assert _code_spans("Send `Idempotency-Key` <b>") == (
        "Send <code>Idempotency-Key</code> &lt;b&gt;"
    )


def test_validation_errors_of_the_whole_request_are_non_field_errors(api_as, operator):
    response = api_as(operator).post(
        reverse("api:commission-rule-list"),
        {"scope": "seller", "percentage_bps": 100},
        format="json",
    )
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["errors"]


@pytest.mark.parametrize(
    "code",
    [
        "resource_missing",  # marketplace/kernel/api/pagination.py
        "invalid_metadata",  # payments/integrations/metadata.py
        "webhook_address_refused",  # payments/integrations/addresses.py
        "webhook_host_unresolvable",
        "invalid_number",  # the headless checkout's DECLINED answers
        "payment_intent_authentication_failure",
    ],
)
def test_every_code_of_the_integrator_api_is_on_the_error_codes_page(api, code):
    page = api.get("/api/v1/errors/")

    assert page.status_code == 200
    assert f'id="{code}"' in page.content.decode()
