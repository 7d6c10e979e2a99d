"""``/api/v1/events/``: each audience sees its own events, filtered and by cursor; an
event is resent to an endpoint that may see it; endpoints are deleted and their
secret rotated through the API."""

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from payments.collection.refunds import refund_create
from payments.integrations.webhooks import webhook_endpoint_create
from payments.models import Event, WebhookDelivery, WebhookEndpoint
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.integrations.helpers import publish_order_paid

pytestmark = pytest.mark.django_db
LIST = "api:event-list"


def detail(event_id):
    return reverse("api:event-detail", args=[event_id])


def resend(event_id):
    return reverse("api:event-resend", args=[event_id])


@pytest.fixture
def world(settings, run, seller, other_seller):
    """A two-seller order paid and partly refunded, and a payout to acme."""
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 1000, 1), (other_seller, 3000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
    run(run_payouts)  # sent then paid by the tasks it queues
    refund = refund_create(order=order, amount_minor=500)
    return {"order": order, "refund": refund}


def event_of(type_, seller=None):
    return Event.objects.get(type=type_, seller=seller)


def test_operators_see_platform_wide_events_newest_first(api_as, operator, world):
    answer = api_as(operator).get(reverse(LIST))

    assert answer.status_code == 200
    data = answer.json()["data"]
    assert [e["type"] for e in data] == [
        "refund.created",
        "payout.paid",
        "payout.sent",
        "order.paid",
    ]
    assert all(e["seller"] is None for e in data)
    order_paid = data[-1]
    assert order_paid["id"] == str(event_of("order.paid").event_id)
    assert order_paid["data"]["total_minor"] == 4000
    assert (order_paid["object_type"], order_paid["object_id"]) == ("order", world["order"].pk)


def test_a_seller_sees_only_their_part_of_their_events(api_as, seller, other_seller, world):
    mine = api_as(seller.user).get(reverse(LIST)).json()["data"]
    theirs = api_as(other_seller.user).get(reverse(LIST)).json()["data"]

    assert {e["seller"] for e in mine} == {"acme"} and {e["seller"] for e in theirs} == {"rival"}
    assert [e["type"] for e in theirs] == ["refund.created", "order.paid"]  # no acme payouts
    paid = next(e for e in mine if e["type"] == "order.paid")
    assert paid["data"]["total_minor"] is None
    assert [so["seller"] for so in paid["data"]["seller_orders"]] == ["acme"]


def test_another_sellers_event_and_a_platform_wide_event_are_not_found(
    api_as, seller, other_seller, operator, world
):
    payout = event_of("payout.paid", seller)  # acme's only
    client = api_as(other_seller.user)

    assert api_as(seller.user).get(detail(payout.event_id)).status_code == 200
    assert client.get(detail(payout.event_id)).status_code == 404
    # an order event both sellers share: each reads their own row under the same id
    shared = event_of("order.paid").event_id
    assert client.get(detail(shared)).json()["seller"] == "rival"
    assert api_as(operator).get(detail(shared)).json()["seller"] is None
    assert client.get(detail(uuid.uuid4())).status_code == 404
    assert client.get(detail("not-a-uuid")).status_code == 404


def test_a_customer_sees_no_events(api_as, customer, world):
    assert api_as(customer).get(reverse(LIST)).status_code == 403


@pytest.mark.parametrize(
    ("query", "types"),
    [
        ({"type": "order.paid"}, ["order.paid"]),
        ({"type": "payout.*"}, ["payout.paid", "payout.sent"]),
        ({"type": "payout"}, []),
        ({"object_type": "refund"}, ["refund.created"]),
    ],
)
def test_filter_by_type(api_as, operator, world, query, types):
    answer = api_as(operator).get(reverse(LIST), query)

    assert [e["type"] for e in answer.json()["data"]] == types


def test_filter_by_object(api_as, operator, world):
    order = world["order"]
    answer = api_as(operator).get(reverse(LIST), {"object_type": "order", "object_id": order.pk})
    other = api_as(operator).get(reverse(LIST), {"object_type": "payout", "object_id": order.pk})

    assert [e["type"] for e in answer.json()["data"]] == ["order.paid"]
    payout_id = event_of("payout.paid").object_id
    assert all(e["object_id"] == payout_id for e in other.json()["data"]) and payout_id
    for bad in ({"object_id": "1.5"}, {"object_id": str(2**64)}, {"object_type": "cart"}):
        assert api_as(operator).get(reverse(LIST), bad).status_code == 400


def test_filter_by_creation_time(api_as, operator, seller, settings):
    start = timezone.now()
    with time_machine.travel(start - timedelta(days=3), tick=False):
        old = paid_order([(seller, 1000, 1)])
    new = paid_order([(seller, 1000, 1)])
    client = api_as(operator)

    before = client.get(reverse(LIST), {"created_before": (start - timedelta(days=1)).isoformat()})
    after = client.get(
        reverse(LIST),
        {"created_after": (start - timedelta(days=1)).isoformat(), "type": "order.paid"},
    )
    odd_offset = client.get(reverse(LIST), {"created_after": "2026-01-01T00:00:00+20:00"})

    assert [e["object_id"] for e in before.json()["data"]] == [old.pk]
    assert [e["object_id"] for e in after.json()["data"]] == [new.pk]
    assert odd_offset.status_code == 200


def test_the_cursor_pages_by_event_id(api_as, operator, world):
    client = api_as(operator)
    first = client.get(reverse(LIST), {"limit": 2}).json()
    second = client.get(
        reverse(LIST), {"limit": 2, "starting_after": first["data"][-1]["id"]}
    ).json()

    assert first["has_more"] is True and second["has_more"] is False
    assert [e["type"] for e in first["data"] + second["data"]] == [
        "refund.created",
        "payout.paid",
        "payout.sent",
        "order.paid",
    ]


def test_the_list_runs_the_same_queries_for_any_number_of_events(
    api_as, operator, seller, count_queries
):
    for _ in range(3):
        paid_order([(seller, 1000, 1)])
    client = api_as(operator), api_as(seller.user)
    for c in client:
        c.get(reverse(LIST))  # warm-up: token last-used stamp

    few = [count_queries(lambda c=c: c.get(reverse(LIST), {"limit": 2})) for c in client]
    for _ in range(6):
        paid_order([(seller, 1000, 1), (SellerFactory(), 500, 1)])
    many = [count_queries(lambda c=c: c.get(reverse(LIST), {"limit": 50})) for c in client]

    assert Event.objects.filter(seller=seller).count() == 9
    assert few == many


def test_a_seller_resends_an_event_to_their_endpoint(
    api_as, seller, world, django_capture_on_commit_callbacks
):
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["payout.paid"]
    )
    event = event_of("payout.paid", seller)
    client = api_as(seller.user)

    with django_capture_on_commit_callbacks() as queued:
        first = client.post(resend(event.event_id), {"endpoint": endpoint.pk})
    WebhookDelivery.objects.filter(pk=first.json()["id"]).update(status="failed", attempts=8)
    with django_capture_on_commit_callbacks() as queued_again:
        again = client.post(resend(event.event_id), {"endpoint": endpoint.pk})

    assert first.status_code == 200, first.json()
    body = first.json()
    assert (body["endpoint"], body["event_id"], body["status"]) == (
        endpoint.pk,
        str(event.event_id),
        "pending",
    )
    assert body["payload"] == event.data
    assert again.json()["id"] == body["id"]  # the same delivery, reset
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert len(queued) == 1 and len(queued_again) == 1


def test_resending_is_idempotent_with_a_key(
    api_as, seller, world, django_capture_on_commit_callbacks
):
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["payout.paid"]
    )
    event = event_of("payout.paid", seller)
    client = api_as(seller.user)
    key = {"HTTP_IDEMPOTENCY_KEY": "resend-1"}

    with django_capture_on_commit_callbacks() as queued:
        first = client.post(resend(event.event_id), {"endpoint": endpoint.pk}, **key)
        replay = client.post(resend(event.event_id), {"endpoint": endpoint.pk}, **key)

    assert first.status_code == replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true" and len(queued) == 1


def test_resend_refusals_name_the_endpoint(api_as, seller, other_seller, operator, world):
    event = event_of("payout.paid", seller)
    theirs = webhook_endpoint_create(
        owner=other_seller.user, url="http://127.0.0.1:9/x", events=["payout.paid"]
    )
    wrong_type = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/y", events=["order.paid"]
    )
    client = api_as(seller.user)

    not_mine = client.post(resend(event.event_id), {"endpoint": theirs.pk})
    not_wanted = client.post(resend(event.event_id), {"endpoint": wrong_type.pk})
    missing = client.post(resend(event.event_id), {"endpoint": 10**12})
    as_string = client.post(resend(event.event_id), {"endpoint": str(wrong_type.pk)})
    # an operator may use any endpoint, but rival's may not see acme's payout
    not_theirs_to_see = api_as(operator).post(
        resend(event_of("payout.paid").event_id), {"endpoint": theirs.pk}
    )

    assert (not_mine.status_code, not_mine.json()["param"]) == (404, "endpoint")
    assert (not_wanted.status_code, not_wanted.json()["param"]) == (400, "endpoint")
    assert missing.status_code == 404
    assert (as_string.status_code, as_string.json()["param"]) == (400, "endpoint")
    assert (not_theirs_to_see.status_code, not_theirs_to_see.json()["param"]) == (400, "endpoint")
    assert not WebhookDelivery.objects.exists()


def test_an_operator_resends_a_sellers_part_to_the_sellers_endpoint(
    api_as, operator, seller, world
):
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    platform_wide = event_of("order.paid")

    answer = api_as(operator).post(resend(platform_wide.event_id), {"endpoint": endpoint.pk})

    assert answer.status_code == 200
    assert answer.json()["payload"] == event_of("order.paid", seller).data  # acme's part only


def test_endpoints_are_deleted(api_as, seller, other_seller, settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    url = reverse("api:webhook-endpoint-detail", args=[endpoint.pk])

    by_someone_else = api_as(other_seller.user).delete(url)
    deleted = api_as(seller.user).delete(url)

    assert by_someone_else.status_code == 404
    assert deleted.status_code == 204
    assert api_as(seller.user).get(url).status_code == 404
    assert not WebhookEndpoint.objects.exists()


def test_the_secret_is_shown_on_create_and_rotation_only(api_as, seller, settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    client = api_as(seller.user)
    created = client.post(
        reverse("api:webhook-endpoint-list"),
        {"url": "http://127.0.0.1:9/x", "events": ["order.paid"]},
    ).json()
    detail_url = reverse("api:webhook-endpoint-detail", args=[created["id"]])
    rotate = reverse("api:webhook-endpoint-rotate-secret", args=[created["id"]])

    read = client.get(detail_url).json()
    listed = client.get(reverse("api:webhook-endpoint-list")).json()["data"][0]
    rotated = client.post(rotate, {"expires_in_hours": 2})
    default = client.post(rotate, {})
    too_long = client.post(rotate, {"expires_in_hours": 169})
    after = client.get(detail_url).json()

    assert created["secret"].startswith("whsec_")
    assert "secret" not in read and "secret" not in listed
    assert read["secret_hint"] == "whsec_…" + created["secret"][-4:] == listed["secret_hint"]
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != created["secret"]
    assert WebhookEndpoint.objects.get().secret == default.json()["secret"]
    assert after["secret_hint"] == "whsec_…" + default.json()["secret"][-4:]
    assert after["previous_secret_expires_at"] is not None
    assert (too_long.status_code, too_long.json()["param"]) == (400, "expires_in_hours")


def test_an_idempotency_key_keeps_no_secret_in_clear_text(api_as, seller, settings):
    from django.db import connection

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    client = api_as(seller.user)
    body = {"url": "http://127.0.0.1:9/x", "events": ["order.paid"]}
    url = reverse("api:webhook-endpoint-list")

    created = client.post(url, body, HTTP_IDEMPOTENCY_KEY="create-1")
    replay = client.post(url, body, HTTP_IDEMPOTENCY_KEY="create-1")
    rotate = reverse("api:webhook-endpoint-rotate-secret", args=[created.json()["id"]])
    rotated = client.post(rotate, {}, HTTP_IDEMPOTENCY_KEY="rotate-1")
    rotated_replay = client.post(rotate, {}, HTTP_IDEMPOTENCY_KEY="rotate-1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM marketplace_idempotencyrecord")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)

    first, new = created.json()["secret"], rotated.json()["secret"]
    assert replay.headers["Idempotent-Replayed"] == "true" and WebhookEndpoint.objects.count() == 1
    assert first.startswith("whsec_") and new.startswith("whsec_") and first != new
    assert rotated_replay.headers["Idempotent-Replayed"] == "true"
    assert rotated_replay.json()["secret"] == new  # the secret as it is now
    assert replay.json()["secret"] == first  # replayed before the rotation
    assert first not in stored and new not in stored and "create-1" in stored


def test_an_operator_cannot_resend_to_a_former_operators_endpoint_for_a_seller(
    api_as, settings, operator, seller
):
    from accounts.services import operator_grant
    from payments.integrations.webhooks import webhook_endpoint_create
    from payments.models import Event, WebhookDelivery
    from tests.factories import UserFactory

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    former = operator_grant(user=UserFactory(email="former-operator@example.com"))
    endpoint = webhook_endpoint_create(
        owner=former, url="http://127.0.0.1:9/x", events=["order.paid"], seller=seller
    )
    publish_order_paid(seller)
    former.is_staff = False
    former.save(update_fields=["is_staff"])
    event = Event.objects.get(seller__isnull=True)

    answer = api_as(operator).post(
        reverse("api:event-resend", args=[event.event_id]), {"endpoint": endpoint.pk}
    )

    assert (answer.status_code, answer.json()["param"]) == (400, "endpoint")
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1  # the one before
