"""Interleavings of payout steps, events and clawbacks that a second reader found
unsafe, each pinned down: an adopted bank payout that had failed, a clawback whose
answer was lost, a bank payout next to a clawback under way, a payout clawed back in
full, a paid payout's retry time, a payout paid before transfers were recorded and
returned after, and a transfer refused after another attempt got it through."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.checks import ledger_check
from payments.collection.clawbacks import _claim, clawback_execute
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import Clawback, LedgerAccount, LocalPayout, LocalTransferReversal, Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import bank_payouts_retry_for_run, payout_send
from payments.payouts.settlement import payout_sync, payout_transfer_refused
from payments.processors.base import TemporaryProcessorError
from payments.processors.local import LocalProcessor
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db
Status = Payout.Status


@pytest.fixture
def earning(seller):
    """90.00 available (a 100.00 sale, 10 % commission) and its payout, not sent."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    payout = run_payouts(sellers=[seller]).created[0]
    return order, payout


def _bank_refused(payout, settings):
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "refused"}
    payout_send(payout=payout)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED
    return payout


def test_an_adopted_bank_payout_that_failed_leaves_the_payout_waiting(earning, settings):
    _, payout = earning
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "timeout_after"}  # made, answer lost
    payout_send(payout=payout)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    made = LocalPayout.objects.get()
    LocalProcessor().payout_return(payout_id=made.id)  # its bank refuses it
    payout_sync(
        processor_name="local",
        processor_payout_id=made.id,
        status="failed",
        metadata={"payout_id": str(payout.pk), "attempt": "1"},
        message="Account closed",
    )
    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED

    bank_payouts_retry_for_run(seller_ids=[payout.seller_id])  # the next run
    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Status.IN_TRANSIT
    assert payout.processor_payout_id != made.id  # a new bank payout, not the failed one
    assert LocalPayout.objects.exclude(status="failed").count() == 1
    assert ledger_check().ok


def test_a_clawback_whose_answer_was_lost_adopts_the_reversal(earning, settings):
    order, payout = earning
    _bank_refused(payout, settings)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=3000))
    clawback = Clawback.objects.get()
    settings.PAYMENTS_LOCAL_FAULTS = {"transfer_reverse": "timeout_after"}
    with pytest.raises(TemporaryProcessorError):
        clawback_execute(clawback_id=clawback.pk)
    settings.PAYMENTS_LOCAL_FAULTS = {}

    clawback_execute(clawback_id=clawback.pk)  # the task's retry, a moment later

    clawback.refresh_from_db()
    assert (clawback.status, clawback.amount_minor) == ("reversed", 2700)
    assert LocalTransferReversal.objects.count() == 1
    payout.refresh_from_db()
    assert payout.bank_amount_minor == 6300
    assert ledger_check().ok


def test_no_bank_payout_while_a_clawback_is_under_way(earning, settings):
    order, payout = earning
    _bank_refused(payout, settings)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=3000))
    _claim(Clawback.objects.get().pk)  # a worker took it up; its reversal is under way

    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED and payout.next_attempt_at
    assert payout.steps.filter(kind="bank_payout").count() == 1  # the refused one only


def test_a_payout_clawed_back_in_full_is_done_without_a_bank_payout(earning, settings):
    order, payout = earning
    _bank_refused(payout, settings)
    refund_mark_succeeded(refund=refund_create(order=order))  # all of it
    clawback_execute(clawback_id=Clawback.objects.get().pk)
    payout.refresh_from_db()
    assert payout.bank_amount_minor == 0

    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Status.PAID and "took it back" in payout.failure_reason
    assert LocalPayout.objects.exclude(status="failed").count() == 0
    assert ledger_check().ok


def test_a_paid_payout_has_no_retry_time(earning, settings):
    _, payout = earning
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "timeout_before"}
    payout_send(payout=payout)  # backing off
    settings.PAYMENTS_LOCAL_FAULTS = {}
    payout.refresh_from_db()
    assert payout.next_attempt_at
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())
    payout_send(payout=payout)
    made = LocalPayout.objects.get()

    payout_sync(processor_name="local", processor_payout_id=made.id, status="paid", metadata={})

    payout.refresh_from_db()
    assert payout.status == Status.PAID
    assert (payout.next_attempt_at, payout.attempts_since) == (None, None)


def test_a_payout_paid_before_transfers_were_recorded_and_returned_after(seller):
    """Before this release, ``payout:<id>:paid`` took the platform's cash itself."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    payout = run_payouts(sellers=[seller], dry_run=False).created[0]
    Payout.objects.filter(pk=payout.pk).update(
        status=Status.PAID,
        processor="local",
        processor_payout_id="po_before",
        sent_at=timezone.now(),
    )
    available = seller_account(seller, LedgerAccount.Kind.AVAILABLE, "USD")
    in_transit = seller_account(seller, LedgerAccount.Kind.IN_TRANSIT, "USD")
    processor = platform_account(LedgerAccount.Kind.PROCESSOR, "USD")
    for kind, key, postings in (
        ("payout_sent", "sent", [Posting(available, 9000), Posting(in_transit, -9000)]),
        ("payout_paid", "paid", [Posting(in_transit, 9000), Posting(processor, -9000)]),
    ):
        ledger_post(
            kind=kind,
            idempotency_key=f"payout:{payout.pk}:{key}",
            reference_type="payout",
            reference_id=payout.pk,
            postings=postings,
        )
    cash = LedgerAccount.objects.with_balance().get(pk=processor.pk).balance

    payout_sync(
        processor_name="local",
        processor_payout_id="po_before",
        status="failed",
        metadata={"payout_id": str(payout.pk)},
    )

    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED
    assert (
        LedgerAccount.objects.with_balance().get(pk=processor.pk).balance == cash
    )  # not taken twice
    connected = platform_account(LedgerAccount.Kind.CONNECTED, "USD")
    assert LedgerAccount.objects.with_balance().get(pk=connected.pk).balance == 9000
    assert ledger_check().ok, ledger_check().problems


def test_a_transfer_refused_after_another_attempt_got_it_through_changes_nothing(earning, settings):
    _, payout = earning
    _bank_refused(payout, settings)

    payout_transfer_refused(payout=payout, reason="The transfer was refused: late answer")

    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED
    assert payout.steps.get(kind="bank_payout").object_status == ""
    assert ledger_check().ok


def test_the_backfill_lists_accounts_whose_payout_was_paid_days_ago(earning, settings):
    from payments.collection.webhooks import connected_accounts_to_backfill

    _, payout = earning
    payout_send(payout=payout)
    Payout.objects.filter(pk=payout.pk).update(
        status=Status.PAID, paid_at=timezone.now() - timedelta(days=4)
    )

    accounts = connected_accounts_to_backfill(
        since=timezone.now() - timedelta(days=3), processor_name="local"
    )

    assert accounts == [payout.seller.payout_account_id]
