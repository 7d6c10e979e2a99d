"""Every answer, site and API, carries a Request-Id; a sane one from the client is
kept; problem bodies and every log line of the request carry it."""

import logging

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from marketplace.kernel.request_ids import RequestIdLogFilter, current_request_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()  # the anonymous rate limit
    return APIClient()


def test_a_site_page_and_an_api_answer_each_get_a_new_request_id(client, api):
    page = client.get("/")
    listing = api.get(reverse("api:product-list"))
    again = api.get(reverse("api:product-list"))

    ids = {page["Request-Id"], listing["Request-Id"], again["Request-Id"]}
    assert len(ids) == 3
    assert all(i.startswith("req_") and len(i) == 28 for i in ids)


@pytest.mark.parametrize("header", ["HTTP_REQUEST_ID", "HTTP_X_REQUEST_ID"])
def test_a_sane_incoming_request_id_is_kept(api, header):
    response = api.get("/api/v1/nothing-here/", **{header: "lb-7f3a:01.2_x"})

    assert response["Request-Id"] == "lb-7f3a:01.2_x"
    assert response.json()["request_id"] == "lb-7f3a:01.2_x"


@pytest.mark.parametrize("bad", ["", "has space", "a" * 129, "new\\nline", "<script>", "é"])
def test_an_insane_incoming_request_id_is_replaced(api, bad):
    response = api.get(reverse("api:product-list"), HTTP_REQUEST_ID=bad)

    assert response["Request-Id"].startswith("req_")
    assert response["Request-Id"] != bad


def test_a_redirect_and_a_login_required_page_carry_it_too(client):
    response = client.get(reverse("marketplace:order_list"))

    assert response.status_code == 302
    assert response["Request-Id"].startswith("req_")


def test_every_log_line_of_a_request_has_its_id_and_none_leaks_after(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/api/v1/nothing-here/", HTTP_X_REQUEST_ID="req_from_the_proxy")

    assert response["Request-Id"] == "req_from_the_proxy"
    # Django logs the 404 ("Not Found: ...") while the request runs.
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert RequestIdLogFilter().filter(record) and record.request_id == "req_from_the_proxy"
    assert current_request_id() == ""


def test_the_log_format_shows_the_request_id():
    from django.conf import settings

    config = settings.LOGGING
    assert "%(request_id)s" in config["formatters"]["plain"]["format"]
    assert "request_id" in config["handlers"]["console"]["filters"]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", (), None)
    RequestIdLogFilter().filter(record)
    assert record.request_id == "-"
