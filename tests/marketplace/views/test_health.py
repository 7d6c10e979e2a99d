"""``/healthz`` for load balancers: the database decides, the broker degrades."""

import pytest
from django.db import OperationalError
from django.urls import reverse

from marketplace import health

pytestmark = pytest.mark.django_db

URL = reverse("healthz")


def test_healthy_with_the_database_and_the_broker(client):
    response = client.get(URL)

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert "no-cache" in response["Cache-Control"]


def test_a_broken_broker_is_degraded_but_still_serving(client, monkeypatch):
    def refuse():
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(health, "_broker", refuse)

    response = client.get(URL)

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["broker"] == {
        "ok": False,
        "ms": response.json()["checks"]["broker"]["ms"],
        "error": "ConnectionRefusedError",
    }


def test_a_database_that_does_not_answer_is_a_503(client, monkeypatch):
    def fail():
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(health, "_database", fail)

    response = client.get(URL)

    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert "could not connect" not in response.text  # the type only, no details


def test_an_unreachable_broker_url_is_reported_quickly(client, monkeypatch):
    real = health._broker
    # Nothing listens on port 1: the real probe, against a broker that is not there.
    monkeypatch.setattr(health, "_broker", lambda: real(url="redis://127.0.0.1:1/0"))

    response = client.get(URL)

    broker = response.json()["checks"]["broker"]
    assert (response.status_code, broker["ok"]) == (200, False)
    assert broker["ms"] < 3000


def test_only_get(client):
    assert client.post(URL).status_code == 405


def test_livez_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(reverse("livez"))

    assert response.status_code == 200
    assert response.content == b"ok"
    assert "no-cache" in response["Cache-Control"]
