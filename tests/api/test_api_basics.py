"""The API's shared behaviour: schema and docs, tokens, problem details, throttling,
and Idempotency-Key replay."""

import socket

import pytest
from django.test import override_settings
from django.urls import reverse
from rest_framework.throttling import SimpleRateThrottle

from accounts.tokens import api_token_create, api_token_revoke
from payments.models import PayoutPolicy, PayoutRun

pytestmark = pytest.mark.django_db


def test_the_schema_is_openapi_3_and_lists_every_money_endpoint(api):
    response = api.get(reverse("api:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/payouts/",
        "/api/v1/payouts/{id}/approve/",
        "/api/v1/payout-runs/",
        "/api/v1/sellers/me/balance/",
        "/api/v1/ledger-entries/",
        "/api/v1/commission-rules/",
    ):
        assert path in schema["paths"], path
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_docs_page_uses_vendored_files_only(api):
    page = api.get(reverse("api:docs"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg" not in html


def test_a_token_signs_in_until_it_is_revoked(api, seller):
    issued = api_token_create(user=seller.user, name="Accounting")
    assert issued.raw.startswith("mkt_") and issued.raw not in issued.token.secret_hash
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
    assert api.get(reverse("api:my-balance")).status_code == 200

    api_token_revoke(user=seller.user, token_id=issued.token.pk)

    response = api.get(reverse("api:my-balance"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer mkt_nope_nope", "Bearer nonsense", "Token a b"])
def test_a_bad_token_is_a_401_problem(api, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get(reverse("api:payout-list"))
    assert response.status_code == 401
    assert set(response.json()) >= {"type", "title", "status", "detail", "code"}


def test_errors_are_problem_details_with_field_errors(api_as, operator):
    response = api_as(operator).post(
        reverse("api:commission-rule-list"),
        {"scope": "default", "percentage_bps": 1000, "fixed_fee_minor": 30},
        format="json",
    )

    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["code"], body["title"]) == (400, "invalid", "Bad Request")
    assert "needs a currency" in str(body["errors"])


@pytest.mark.parametrize("url_name", ["api:payout-list", "api:ledger-entry-list"])
def test_a_time_filter_with_any_iso_offset_is_compared_in_utc(api_as, operator, url_name):
    """PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows (the fuzzer's 500)."""
    client = api_as(operator)
    for moment in ("2026-01-01T00:00:00+20:00", "0239-08-02T19:47:22-22:56"):
        response = client.get(reverse(url_name), {"created_after": moment})
        assert response.status_code == 200, response.content
    too_early = client.get(reverse(url_name), {"created_before": "0001-01-01T00:00:00+10:00"})
    assert too_early.status_code == 400
    assert "between the years 1 and 9999" in str(too_early.json())


def test_malformed_json_is_a_400_problem(api_as, operator):
    response = api_as(operator).post(
        reverse("api:payout-run-list"), "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_anonymous_callers_are_throttled_with_retry_after(api, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "3/min", "user": "9/min"})
    url = reverse("api:schema") + "?format=json"
    for _ in range(3):
        assert api.get(url).status_code == 200

    response = api.get(url)

    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_an_idempotency_key_replays_the_first_answer(api_as, operator):
    client = api_as(operator)
    url = reverse("api:payout-policy-list")
    body = {"seller": None, "schedule": "weekly", "weekday": 4}

    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="policy-1")
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="policy-1")

    assert first.status_code == 201, first.json()
    assert again.status_code == 201, again.json()
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert PayoutPolicy.objects.count() == 1

    other = client.post(url, {**body, "weekday": 2}, format="json", HTTP_IDEMPOTENCY_KEY="policy-1")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_an_idempotency_key_belongs_to_its_user(api_as, operator):
    from accounts.services import operator_grant
    from tests.factories import UserFactory

    second = operator_grant(user=UserFactory(email="second-operator@example.com"))
    url = reverse("api:payout-run-list")
    for user in (operator, second):
        response = api_as(user).post(
            url, {"dry_run": False}, format="json", HTTP_IDEMPOTENCY_KEY="run-today"
        )
        assert response.status_code == 201
    assert PayoutRun.objects.count() == 2


def test_expired_idempotency_keys_are_forgotten(api_as, operator):
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.kernel.api.idempotency import idempotency_keys_expire
    from marketplace.models import IdempotencyRecord

    client = api_as(operator)
    url = reverse("api:payout-run-list")
    client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert PayoutRun.objects.count() == 2
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_expire() == 1


def test_the_rate_limits_fail_open_while_their_cache_is_down(api, monkeypatch, caplog):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1/min", "user": "1/min"})
    with socket.socket() as s:  # a port nothing listens on: the Redis is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis_down = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    url = reverse("api:schema") + "?format=json"

    with override_settings(CACHES=redis_down):
        statuses = [api.get(url).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert "API rate limit skipped: the cache is unavailable" in caplog.text
