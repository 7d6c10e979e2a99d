"""A broker outage loses no work: a refused publish is kept in the database and queued
again when the broker is back; stored webhook events whose task was lost are swept."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from marketplace.kernel.task_queue import deferred_tasks_send, enqueue, enqueue_on_commit
from marketplace.models import DeferredTask
from payments.collection.webhooks import webhook_events_sweep
from payments.models import WebhookEvent
from payments.processors.local import SIGNATURE_HEADER, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """Record every publish instead of sending it; ``published.refuse = True`` makes the
    broker refuse, as a stopped Redis does."""

    class Broker:
        refuse = False
        messages: list[tuple[str, tuple]] = []

    def apply_async(self, args=(), **options):
        if Broker.refuse:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        Broker.messages.append((self.name, tuple(args)))

    Broker.messages = []
    monkeypatch.setattr("celery.app.task.Task.apply_async", apply_async)
    return Broker


def test_a_task_is_published_after_commit(published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("marketplace.tasks.ping")
        assert published.messages == []

    assert published.messages == [("marketplace.tasks.ping", ())]
    assert not DeferredTask.objects.exists()


def test_a_refused_publish_is_kept_and_does_not_raise(published, caplog):
    published.refuse = True

    assert enqueue("payments.tasks.webhook_event_process_task", 42) is False

    kept = DeferredTask.objects.get()
    assert (kept.task, kept.args) == ("payments.tasks.webhook_event_process_task", [42])
    assert kept.error.startswith("OperationalError: Error 111")
    assert "kept to queue again" in caplog.text


def test_kept_tasks_are_sent_oldest_first_once_the_broker_is_back(published):
    published.refuse = True
    enqueue("payments.tasks.webhook_event_process_task", 1)
    enqueue("payments.tasks.webhook_event_process_task", 2)

    assert deferred_tasks_send() == 0  # still down: nothing sent, nothing lost
    assert DeferredTask.objects.count() == 2
    assert DeferredTask.objects.order_by("pk").first().attempts == 2

    published.refuse = False
    assert deferred_tasks_send() == 2
    assert published.messages == [
        ("payments.tasks.webhook_event_process_task", (1,)),
        ("payments.tasks.webhook_event_process_task", (2,)),
    ]
    assert not DeferredTask.objects.exists()


def test_an_unknown_task_name_is_left_for_an_operator(published):
    DeferredTask.objects.create(task="payments.tasks.renamed_task", args=[1])

    assert deferred_tasks_send() == 0
    assert DeferredTask.objects.count() == 1


def test_the_webhook_endpoint_answers_200_with_the_broker_down(
    client, published, django_capture_on_commit_callbacks
):
    published.refuse = True
    payload = json.dumps(
        {"id": "evt_down", "type": "customer.created", "created": 1, "data": {"object": {}}}
    ).encode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("payments:webhook", args=["local"]),
            payload,
            content_type="application/json",
            headers={SIGNATURE_HEADER: sign(payload)},
        )

    assert response.status_code == 200
    stored = WebhookEvent.objects.get(event_id="evt_down")
    assert stored.status == WebhookEvent.Status.RECEIVED
    assert DeferredTask.objects.get().args == [stored.pk]


def test_the_sweep_queues_events_left_waiting_and_only_those(published):
    def event(event_id, status, minutes_ago):
        stored = WebhookEvent.objects.create(
            processor="local", event_id=event_id, type="customer.created", payload="{}"
        )
        WebhookEvent.objects.filter(pk=stored.pk).update(
            status=status, received_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
        return stored.pk

    lost = event("evt_lost", WebhookEvent.Status.RECEIVED, 6)
    event("evt_new", WebhookEvent.Status.RECEIVED, 1)  # its task may still be on its way
    event("evt_done", WebhookEvent.Status.PROCESSED, 60)
    event("evt_failed", WebhookEvent.Status.FAILED, 60)  # retried by its task, then operators

    assert webhook_events_sweep() == 1
    assert published.messages == [("payments.tasks.webhook_event_process_task", (lost,))]


def test_operators_see_the_kept_tasks_and_queue_them_again_from_the_admin(
    operator_client, published
):
    published.refuse = True
    enqueue("payments.tasks.webhook_event_process_task", 7)
    kept = DeferredTask.objects.get()
    url = reverse("admin:marketplace_deferredtask_changelist")

    page = operator_client.get(url)
    assert page.status_code == 200
    assert "payments.tasks.webhook_event_process_task" in page.content.decode()

    published.refuse = False
    response = operator_client.post(
        url, {"action": "send_now", "_selected_action": [kept.pk]}, follow=True
    )

    assert "Queued 1 of 1" in response.content.decode()
    assert published.messages == [("payments.tasks.webhook_event_process_task", (7,))]
    assert not DeferredTask.objects.exists()
