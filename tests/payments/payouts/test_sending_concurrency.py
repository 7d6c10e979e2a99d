"""The payout steps and clawbacks raced on PostgreSQL, with the local processor (whose
state is in the same database, so "what the processor holds" is read back exactly).

Pairs: two senders of one payout (its task and the sweeper); a clawback and the
bank payout of the same transferred payout; one clawback run twice; a refund that
succeeds while its payout is being transferred; a returned bank payout and the
run that sends it again. After each: one transfer per payout, the seller's
processor account never overdrawn and empty once paid out, every money invariant
(``ledger_check``).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.utils import timezone

from payments.checks import ledger_check
from payments.collection.clawbacks import clawback_execute
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import (
    Clawback,
    LocalPayout,
    LocalTransfer,
    LocalTransferReversal,
    Payout,
    PayoutPolicy,
)
from payments.payouts import sending as payout_sending
from payments.payouts.freezes import seller_freeze
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import bank_payouts_retry_for_run, payout_send
from payments.payouts.settlement import payout_sync
from payments.processors.local import LocalProcessor
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.payouts.helpers import made_payout
from tests.payments.test_concurrency_money import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROUNDS = 4
Status = Payout.Status


def _earning(seller):
    """A released 100.00 sale: 90.00 available; the run makes its payout (not sent)."""
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run_payouts(sellers=[seller])  # its send task goes to the (unused) broker
    return order, Payout.objects.filter(seller=seller).latest("pk")


def _held_at_processor(seller) -> int:
    return LocalProcessor().account_balance(account_id=seller.payout_account_id, currency="USD")


def _assert_once_and_consistent(payout: Payout) -> None:
    transfers = LocalTransfer.objects.filter(transfer_group=payout.transfer_group)
    assert transfers.count() == 1, "transferred twice"
    transfer = transfers.get()
    paid_out = sum(
        LocalPayout.objects.filter(account=transfer.destination)
        .exclude(status="failed")
        .values_list("amount_minor", flat=True)
    )
    reversed_ = sum(
        LocalTransferReversal.objects.filter(transfer=transfer).values_list(
            "amount_minor", flat=True
        )
    )
    assert paid_out + reversed_ <= transfer.amount_minor, "the connected account is overdrawn"
    report = ledger_check()
    assert report.ok, report.problems


@pytest.fixture(autouse=True)
def _commission(db):
    CommissionRuleFactory(percentage_bps=1000)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_senders_of_one_payout_transfer_and_pay_out_once(seller, round_):
    _, payout = _earning(seller)

    results = run_together(2, lambda: payout_send(payout=Payout(pk=payout.pk)))

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    assert payout.status == Status.IN_TRANSIT
    assert LocalPayout.objects.count() == 1
    assert payout.steps.filter(kind="bank_payout").count() == 1
    _assert_once_and_consistent(payout)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_clawback_and_the_bank_payout_of_one_transfer_split_it(seller, settings, round_):
    order, payout = _earning(seller)
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "refused"}
    payout_send(payout=payout)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=3000))
    clawback = Clawback.objects.get()

    results = run_together(
        2,
        lambda: clawback_execute(clawback_id=clawback.pk),
        lambda: payout_send(payout=Payout(pk=payout.pk)),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    clawback.refresh_from_db()
    payout.refresh_from_db()
    if payout.status == Status.TRANSFERRED:  # it waited for the clawback under way
        assert clawback.status == "reversed" and payout.next_attempt_at
        Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())
        payout_send(payout=payout)
        payout.refresh_from_db()
    assert payout.status == Status.IN_TRANSIT
    bank = LocalPayout.objects.get()
    if clawback.status == "reversed":  # it came first: the bank payout pays the rest
        assert (clawback.amount_minor, bank.amount_minor) == (2700, 6300)
    else:  # the bank payout came first: nothing was left to take; a debt
        assert (clawback.status, bank.amount_minor) == ("nothing_held", 9000)
    assert _held_at_processor(seller) == 0
    _assert_once_and_consistent(payout)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_clawback_run_twice_at_once_reverses_once(seller, settings, round_):
    order, payout = _earning(seller)
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "refused"}
    payout_send(payout=payout)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=3000))
    clawback = Clawback.objects.get()

    results = run_together(2, lambda: clawback_execute(clawback_id=clawback.pk))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert LocalTransferReversal.objects.count() == 1
    clawback.refresh_from_db()
    assert (clawback.status, clawback.amount_minor) == ("reversed", 2700)
    _assert_once_and_consistent(payout)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_refund_that_succeeds_while_its_payout_is_transferred(seller, round_):
    order, payout = _earning(seller)
    refund = refund_create(order=order, amount_minor=3000)

    results = run_together(
        2,
        lambda: refund_mark_succeeded(refund=refund),
        lambda: payout_send(payout=Payout(pk=payout.pk)),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    # The payout was made before the refund (90.00); the refund is a debt, or a
    # clawback if the transfer was recorded first (and its bank payout not under way).
    assert payout.status in (Status.IN_TRANSIT, Status.CANCELLED, Status.HELD)
    for clawback in Clawback.objects.all():
        clawback_execute(clawback_id=clawback.pk)
    if payout.status == Status.IN_TRANSIT:
        _assert_once_and_consistent(payout)
    report = ledger_check()
    assert report.ok, report.problems


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_returned_payout_and_the_run_sending_it_again(seller, round_):
    _, payout = _earning(seller)
    payout_send(payout=payout)
    payout.refresh_from_db()
    first = payout.processor_payout_id
    payout_sync(processor_name="local", processor_payout_id=first, status="paid", metadata={})
    LocalPayout.objects.filter(pk=first).update(status="failed")  # the bank returns it

    def returned():
        return payout_sync(
            processor_name="local",
            processor_payout_id=first,
            status="failed",
            metadata={},
            message="Returned",
        )

    def run_again():
        bank_payouts_retry_for_run(seller_ids=[seller.pk])
        return payout_send(payout=Payout(pk=payout.pk))

    results = run_together(2, returned, run_again)

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    # Whichever came first, the return is recorded once and at most one new bank
    # payout is made from the returned money.
    assert payout.status in (Status.TRANSFERRED, Status.IN_TRANSIT)
    payout_send(payout=Payout(pk=payout.pk))  # the next run, if this one came too early
    payout.refresh_from_db()
    assert payout.status == Status.IN_TRANSIT
    assert LocalPayout.objects.exclude(status="failed").count() == 1
    _assert_once_and_consistent(payout)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(4))
def test_a_freeze_racing_the_send_never_lets_a_bank_payout_out_after_it(seller, round_):
    """A freeze and a send at once, on PostgreSQL: the freeze holds the payout, or
    the send went first and the freeze stops it before its bank payout, or the send
    claimed its bank payout before the freeze committed. Never a bank payout whose
    claim came after the freeze; never two transfers; the ledger whole."""
    payout = made_payout(seller)

    results = run_together(
        2,
        lambda: seller_freeze(seller=seller, by=None, reason="Fraud check"),
        lambda: payout_send(payout=Payout(pk=payout.pk)),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    transfers = LocalTransfer.objects.filter(transfer_group=payout.transfer_group)
    assert transfers.count() <= 1
    if payout.status == Status.HELD:
        assert not transfers.exists() and not payout.steps.exists()
    elif payout.status in (Status.SENDING, Status.TRANSFERRED):
        assert payout.failure_reason == "Payouts frozen: Fraud check"
        assert not LocalPayout.objects.exists()
    else:
        assert payout.status in (Status.IN_TRANSIT, Status.PAID)
        assert LocalPayout.objects.count() == 1
    payout_send(payout=Payout(pk=payout.pk))  # once frozen, nothing more goes out
    assert LocalPayout.objects.count() == (
        1 if payout.status in (Status.IN_TRANSIT, Status.PAID) else 0
    )
    report = ledger_check()
    assert report.ok, report.problems


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_freeze_committed_before_the_transfer_call_stops_the_transfer(seller, monkeypatch):
    """The freeze writes the seller's policy, then waits for the payout's row lock that
    the send's ``_start`` holds (after its guard read the freeze, not committed yet).
    It commits as soon as ``_start`` does, before the transfer call. The transfer
    should not be made. Before the lean send the transfer's own claim read the freeze
    again, in a transaction of its own after ``_start`` committed, so this freeze was
    seen whenever it committed before that read (7 of 12 rounds of the racing test
    above stopped before the transfer then; 0 of 12 now); here the lean send has no
    read left between ``_start`` and the call. (The old code fails this exact
    schedule too, as its read raced the commit: the fix is a freeze read right before
    the call.)"""
    payout = made_payout(seller)
    marking, frozen = threading.Event(), threading.Event()
    real_post = payout_sending.payout_post
    real_transfer = LocalProcessor.transfer_create

    def post(*args, **kwargs):  # in _start: the guard has read the freeze, the lock is held
        marking.set()
        time.sleep(0.5)  # the freeze saves its policy and waits for this payout's lock
        return real_post(*args, **kwargs)

    def transfer_create(self, **kwargs):
        assert frozen.wait(10)  # the freeze has committed
        return real_transfer(self, **kwargs)

    def freeze():
        assert marking.wait(10)
        seller_freeze(seller=seller, by=None, reason="Fraud check")
        frozen.set()

    monkeypatch.setattr("payments.payouts.sending.payout_post", post)
    monkeypatch.setattr(LocalProcessor, "transfer_create", transfer_create)

    results = run_together(2, freeze, lambda: payout_send(payout=Payout(pk=payout.pk)))

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    assert PayoutPolicy.objects.get(seller=seller).frozen
    assert not LocalPayout.objects.exists()  # (holds today: the bank claim reads it)
    assert payout.failure_reason == "Payouts frozen: Fraud check"
    assert not LocalTransfer.objects.exists(), "transferred after the freeze committed"
