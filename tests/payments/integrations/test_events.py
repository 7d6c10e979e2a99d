"""Events are recorded for every announced change, whether or not an endpoint listens,
kept 30 days; deleting an endpoint stops what was queued for it."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from payments.collection.refunds import refund_create
from payments.integrations.events import RETENTION, webhook_retention_apply
from payments.integrations.webhooks import webhook_endpoint_create, webhook_endpoint_delete
from payments.models import Event, WebhookDelivery, WebhookEndpoint
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


def test_an_event_is_recorded_per_audience_even_when_no_endpoint_listens(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    assert not WebhookEndpoint.objects.exists()

    order = paid_order([(seller, 1000, 1), (other_seller, 3000, 1)])

    rows = {row.seller_id: row for row in Event.objects.filter(type="order.paid")}
    assert set(rows) == {None, seller.pk, other_seller.pk}
    assert len({row.event_id for row in rows.values()}) == 1
    assert {(row.object_type, row.object_id) for row in rows.values()} == {("order", order.pk)}
    assert rows[None].data["total_minor"] == 4000
    mine = rows[seller.pk].data
    assert mine["total_minor"] is None
    assert [part["seller"] for part in mine["seller_orders"]] == ["acme"]


def test_refund_and_payout_events_name_their_object(seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 1)])

    refund = refund_create(order=order, amount_minor=500)

    event = Event.objects.get(type="refund.created", seller__isnull=True)
    assert (event.object_type, event.object_id) == ("refund", refund.pk)
    assert event.data["amount_minor"] == 500


def test_a_rolled_back_change_records_no_event(seller):
    with pytest.raises(RuntimeError), transaction.atomic():
        paid_order([(seller, 1000, 1)])
        raise RuntimeError("the checkout failed after the capture")

    assert not Event.objects.exists()


def test_the_delivery_carries_the_recorded_event_id(run, receiver, seller):
    webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])

    run(paid_order, [(seller, 1000, 1)])

    headers, body = receiver.requests[0].headers, receiver.requests[0].body
    sent = json.loads(body)
    recorded = Event.objects.get(seller=seller)
    assert sent["id"] == headers["Marketplace-Delivery"] == str(recorded.event_id)
    assert sent["data"] == recorded.data


def test_deleting_an_endpoint_stops_its_queued_deliveries(
    eager_celery, django_capture_on_commit_callbacks, receiver, seller
):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    with django_capture_on_commit_callbacks(execute=False) as queued:
        paid_order([(seller, 1000, 1)])
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1

    webhook_endpoint_delete(endpoint=endpoint)
    for callback in queued:
        callback()  # the worker picks up the tasks queued before the deletion

    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()
    assert Event.objects.filter(seller=seller).count() == 1  # the event itself stays


def test_events_are_kept_thirty_days(seller):
    start = timezone.now()
    with time_machine.travel(start - RETENTION - timedelta(hours=1), tick=False):
        paid_order([(seller, 1000, 1)])
    with time_machine.travel(start - RETENTION + timedelta(hours=1), tick=False):
        recent = paid_order([(seller, 1000, 1)])

    deleted = webhook_retention_apply(now=start)

    assert deleted == 2  # the old event's platform-wide row and the seller's row
    assert {event.object_id for event in Event.objects.all()} == {recent.pk}


def test_retention_runs_daily_from_beat():
    task = PeriodicTask.objects.get(task="payments.tasks.webhook_retention_task")

    assert task.enabled and (task.crontab.hour, task.crontab.minute) == ("4", "10")


def test_the_retention_task_deletes_old_events(seller):
    from payments.tasks import webhook_retention_task

    with time_machine.travel(timezone.now() - timedelta(days=31), tick=False):
        paid_order([(seller, 1000, 1)])

    assert webhook_retention_task() == 2
    assert not Event.objects.exists()
