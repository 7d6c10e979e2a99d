"""Idempotency-Key as Stripe does it: the same request in canonical JSON replays, the
query string counts, a request refused before it ran frees its key, and a key whose
request died is freed after a timeout."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.kernel.api.idempotency import IN_PROGRESS_TIMEOUT, _canonical_body, _fingerprint
from marketplace.models import IdempotencyRecord, Order
from tests.api.shapes import SHIPPING
from tests.concurrency import race
from tests.factories import ProductFactory


@pytest.fixture
def mug(db):
    return ProductFactory(title="Mug", price_minor=1250, currency="USD", stock=50)


def order_body(mug, quantity=1):
    return {"items": [{"product": mug.pk, "quantity": quantity}], "shipping": SHIPPING}


def post_raw(client, raw, key, url=None):
    return client.post(
        url or reverse("api:order-list"),
        raw,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.django_db
def test_the_same_json_with_keys_reordered_and_other_spacing_is_replayed(api_as, customer, mug):
    client = api_as(customer)
    body = order_body(mug)
    reordered = {"shipping": dict(reversed(list(SHIPPING.items()))), "items": body["items"]}

    first = post_raw(client, json.dumps(body), "k-reorder")
    again = post_raw(client, json.dumps(reordered, indent=2), "k-reorder")

    assert first.status_code == 201, first.json()
    assert again.status_code == 201, again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Order.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_query_string_is_another_request(api_as, customer, mug):
    client = api_as(customer)
    raw = json.dumps(order_body(mug))

    first = post_raw(client, raw, "k-query", url=reverse("api:order-list") + "?a=1&b=2")
    same = post_raw(client, raw, "k-query", url=reverse("api:order-list") + "?b=2&a=1")
    other = post_raw(client, raw, "k-query", url=reverse("api:order-list") + "?a=2&b=2")

    assert first.status_code == 201
    assert same.status_code == 201 and same["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert Order.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_a_validation_failure_is_not_stored_so_the_corrected_retry_runs(api_as, customer, mug):
    client = api_as(customer)
    wrong = order_body(mug)
    wrong["items"][0]["quantity"] = "1"  # a string: refused

    refused = post_raw(client, json.dumps(wrong), "k-fix")
    corrected = post_raw(client, json.dumps(order_body(mug)), "k-fix")

    assert refused.status_code == 400
    assert refused.json()["param"] == "items[0][quantity]"
    assert corrected.status_code == 201, corrected.json()
    assert not corrected.has_header("Idempotent-Replayed")
    assert Order.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_a_404_frees_its_key_and_a_409_business_answer_is_kept(api_as, customer, mug):
    client = api_as(customer)
    url = reverse("api:order-cancel", args=[999_999])

    missing = client.post(url, HTTP_IDEMPOTENCY_KEY="k-404")
    assert missing.status_code == 404
    assert not IdempotencyRecord.objects.filter(key="k-404").exists()

    sold_out = post_raw(client, json.dumps(order_body(mug, quantity=51)), "k-409")
    replay = post_raw(client, json.dumps(order_body(mug, quantity=51)), "k-409")
    assert sold_out.status_code == replay.status_code == 409
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["code"] == "out_of_stock"


@pytest.mark.django_db
def test_a_key_whose_request_died_is_freed_after_the_timeout(api_as, customer, mug, rf):
    client = api_as(customer)
    raw = json.dumps(order_body(mug))
    url = reverse("api:order-list")
    # What a killed worker leaves: the claim of this very request, never an answer.
    IdempotencyRecord.objects.create(
        user=customer,
        key="k-died",
        method="POST",
        path=url,
        request_hash=_fingerprint(rf.post(url, raw, content_type="application/json")),
    )

    still_running = post_raw(client, raw, "k-died")
    IdempotencyRecord.objects.filter(key="k-died").update(
        created_at=timezone.now() - IN_PROGRESS_TIMEOUT - timedelta(seconds=1)
    )
    after_the_timeout = post_raw(client, raw, "k-died")

    assert still_running.status_code == 409
    assert still_running.json()["code"] == "idempotency_in_progress"
    assert still_running["Retry-After"] == "1"
    assert after_the_timeout.status_code == 201, after_the_timeout.json()
    assert Order.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_an_answered_key_is_not_freed_by_the_in_progress_timeout(api_as, customer, mug):
    client = api_as(customer)
    raw = json.dumps(order_body(mug))
    first = post_raw(client, raw, "k-old")
    IdempotencyRecord.objects.filter(key="k-old").update(
        created_at=timezone.now() - IN_PROGRESS_TIMEOUT - timedelta(minutes=5)
    )

    again = post_raw(client, raw, "k-old")

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(customer=customer).count() == 1


def test_the_canonical_body_sorts_keys_drops_spaces_and_keeps_other_bytes():
    assert _canonical_body(b'{"b": 1, "a": {"d": [1, 2], "c": null}}') == (
        b'{"a":{"c":null,"d":[1,2]},"b":1}'
    )
    assert _canonical_body(b"not json") == b"not json"
    assert _canonical_body(b"") == b""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_with_one_key_at_once_run_once(api_as, customer, mug):
    raw = json.dumps(order_body(mug))
    first, second = api_as(customer), api_as(customer)

    outcome = race(lambda: post_raw(first, raw, "k-race"), lambda: post_raw(second, raw, "k-race"))

    loser = outcome.get("value")
    assert loser is not None, outcome
    assert loser.status_code in (201, 409), loser.json()
    if loser.status_code == 201:
        assert loser["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(customer=customer).count() == 1
    mug.refresh_from_db()
    assert mug.stock == 49


@pytest.mark.django_db
def test_a_server_error_is_kept_under_its_idempotency_key_as_stripe_does(
    api_as, operator, monkeypatch
):
    """The work may have committed before the failure: the same key answers the same
    500 (nothing runs twice); a new key runs the request again."""
    client = api_as(operator)
    client.raise_request_exception = False
    url = reverse("api:payout-run-list")

    def boom(**kwargs):
        raise RuntimeError("a bug after the work")

    monkeypatch.setattr("payments.api.views.run_payouts", boom)
    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 500
    monkeypatch.undo()
    replay = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert replay.status_code == 500
    assert replay["Idempotent-Replayed"] == "true"
    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 201
