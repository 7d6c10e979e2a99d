"""Celery tasks of the payments app: thin callers of the services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from payments.processors.base import InvalidProcessorRequest

# A payout task's own comebacks after temporary errors (the sweeper goes on after).
SEND_RETRIES = 50


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(Exception,),
    dont_autoretry_for=(InvalidProcessorRequest,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def webhook_event_process_task(self: Any, webhook_event_id: int) -> str:
    """Process one stored webhook event; failures are retried with backoff."""
    from payments.collection.webhooks import webhook_event_process

    return str(webhook_event_process(webhook_event_id=webhook_event_id).status)


@shared_task
def webhook_events_sweep_task() -> int:
    """Queue again the stored webhook events whose processing task was lost."""
    from payments.collection.webhooks import webhook_events_sweep

    return webhook_events_sweep()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=2, max_retries=5)
def local_event_deliver(event_id: str) -> None:
    """The local processor's event delivery: sign it and hand it to the webhook service."""
    from payments.collection.webhooks import webhook_receive
    from payments.models import LocalEvent
    from payments.processors.local import SIGNATURE_HEADER, LocalProcessor, sign

    event = LocalEvent.objects.get(pk=event_id)
    payload = LocalProcessor.event_payload(event)
    webhook_receive(
        processor_name="local",
        payload=payload,
        headers={SIGNATURE_HEADER: sign(payload), "Content-Type": "application/json"},
    )


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def order_paid_notify_task(order_id: int) -> int:
    from payments.reporting.notifications import order_paid_notify

    return order_paid_notify(order_id=order_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def refund_succeeded_notify_task(refund_id: int) -> int:
    from payments.reporting.notifications import refund_succeeded_notify

    return refund_succeeded_notify(refund_id=refund_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def refund_request_declined_notify_task(request_id: int) -> int:
    from payments.reporting.notifications import refund_request_declined_notify

    return refund_request_declined_notify(request_id=request_id)


@shared_task
def orders_expire_unpaid_task() -> int:
    """Cancel orders left unpaid past PAYMENTS_ORDER_EXPIRY_MINUTES and release their stock."""
    from payments.collection.expiry import orders_expire_unpaid

    return orders_expire_unpaid()


@shared_task
def holds_release_due_task() -> int:
    """Move sellers' earnings whose hold is over from pending to available."""
    from payments.payouts.holds import holds_release_due

    return holds_release_due()


@shared_task
def refunds_submit_pending_task() -> int:
    """Retry refunds that could not be sent to the processor."""
    from payments.collection.refunds import refunds_submit_pending

    return refunds_submit_pending()


@shared_task
def run_payouts_task() -> int:
    """The scheduled payout run: splits the due sellers into chunks, each made by its own
    task (``payout_run_chunk_task``); returns how many chunks."""
    from payments.payouts.runs import run_payouts

    report = run_payouts(fan_out=True)
    return report.run.chunks_total if report.run is not None else 0


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=8)
def payout_run_chunk_task(run_id: int, number: int, now: str) -> int:
    """Make one chunk of a payout run (one transaction; a chunk made already is a no-op);
    returns how many payouts it made."""
    from datetime import datetime

    from payments.payouts.runs import payout_run_chunk_make

    report = payout_run_chunk_make(run_id=run_id, number=number, now=datetime.fromisoformat(now))
    return len([plan for plan in report.planned if plan.payout is not None])


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def payout_sends_enqueue_task(payout_ids: list[int], first_slot: int, since: str) -> int:
    """Queue the send tasks of one chunk's payouts, paced from the run's ``first_slot``."""
    from datetime import datetime

    from payments.payouts.runs import payout_sends_enqueue

    return payout_sends_enqueue(
        payout_ids=payout_ids, first_slot=first_slot, since=datetime.fromisoformat(since)
    )


@shared_task(
    bind=True,
    acks_late=True,
    # Each worker sends at most this many payouts a second (two processor calls each);
    # rate-limit answers are TemporaryProcessorErrors, retried with backoff below.
    rate_limit=settings.PAYMENTS_PAYOUT_RATE_LIMIT,
    autoretry_for=(Exception,),
    dont_autoretry_for=(InvalidProcessorRequest,),
    retry_backoff=10,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=10,
)
def payout_send_task(self: Any, payout_id: int) -> str:
    """Take one payout as far as it goes; a temporary processor error sets when to try
    again (a new attempt), and the task comes back then (the sweeper, if it is lost)."""
    from django.utils import timezone

    from payments.models import Payout
    from payments.payouts.sending import SENDABLE, payout_send

    payout = payout_send(payout=Payout(pk=payout_id))  # read under its row lock there
    # Only while it is on its way and not waiting for an operator; run eagerly (tests),
    # the caller or the sweeper tries again instead. Past the retries, the sweeper does.
    if payout.status in SENDABLE and payout.next_attempt_at and not payout.attention_reason:
        if self.request.is_eager:
            return str(payout.status)
        wait = (payout.next_attempt_at - timezone.now()).total_seconds()
        raise self.retry(countdown=max(int(wait), 1), max_retries=SEND_RETRIES)
    return str(payout.status)


@shared_task
def payouts_sweep_task() -> int:
    """Send again the payouts whose retry is due or whose task was lost, and run the
    clawbacks a lost task left behind."""
    from payments.collection.clawbacks import clawbacks_sweep
    from payments.payouts.sending import payouts_sweep

    return payouts_sweep() + clawbacks_sweep()


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    dont_autoretry_for=(InvalidProcessorRequest,),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=8,
)
def clawback_task(clawback_id: int) -> str:
    """Take a seller's part of a refund or a lost dispute back from a transfer."""
    from payments.collection.clawbacks import clawback_execute

    return str(clawback_execute(clawback_id=clawback_id).status)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def payout_notify_task(payout_id: int, event: str) -> int:
    from payments.reporting.notifications import payout_notify

    return payout_notify(payout_id=payout_id, event=event)


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=10,
)
def webhook_delivery_task(self: Any, delivery_id: int) -> str:
    """Send one webhook to an integrator; a non-2xx answer is retried with backoff."""
    from payments.integrations.webhooks import webhook_delivery_attempt

    delivery = webhook_delivery_attempt(delivery_id=delivery_id)
    return str(delivery.status) if delivery else "gone"


@shared_task
def reconcile_task(hours: int = 24) -> int:
    """Beat's daily reconciliation of the last ``hours`` with the processor, kept for the
    console; returns how many differences it found."""
    from datetime import timedelta

    from django.utils import timezone

    from payments.reporting.reconciliation import reconciliation_record

    until = timezone.now()
    report = reconciliation_record(since=until - timedelta(hours=hours), until=until, via="beat")
    return len(report.differences)


@shared_task
def webhook_retention_task() -> int:
    """Beat's daily housekeeping of events (30 days kept) and rotated webhook secrets;
    returns how many events it deleted."""
    from payments.integrations.events import webhook_retention_apply

    return webhook_retention_apply()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=5, max_retries=5)
def order_payment_failed_notify_task(order_id: int) -> int:
    """Tell the customer their bank debit failed and the order was cancelled (once)."""
    from payments.reporting.notifications import order_payment_failed_notify

    return order_payment_failed_notify(order_id=order_id)


@shared_task
def local_debits_settle_task() -> int:
    """Beat, every minute: settle the local processor's bank debits that are due."""
    from payments.processors.local import local_debits_settle

    return local_debits_settle()


@shared_task
def seller_plans_bill_task() -> int:
    """Beat, hourly: charge every current seller plan not yet charged for this month."""
    from payments.revenue.plans import seller_plans_bill

    return seller_plans_bill()


@shared_task
def listings_renew_due_task() -> int:
    """Beat, daily: renew (charge again) the active products whose listing has ended."""
    from payments.revenue.listing_fees import listings_renew_due

    return listings_renew_due()
