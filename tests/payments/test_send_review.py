"""A second reader of the lean payout send (commit "A lean payout send"): each next
attempt is claimed under the lock the step before it holds, the freeze is one read,
and the local processor's two balance reads are one raw statement. Each test pins
one thing an outside tester would try: a freeze during the transfer call, a second
sender (a redelivered task) during the call, a crash inside the merged bank claim,
the raw SQL against the ORM reads it replaced, the freeze read's precedence, and a
freeze racing the send on PostgreSQL. One finding was fixed: a freeze that
commits after the payout is marked sent, before the transfer call, was no longer
seen before the transfer when the lean send claimed the transfer attempt with the
sent marking; the transfer is claimed in a transaction of its own again, whose
freeze check sees it (``test_a_freeze_committed_before_the_transfer_call_stops_the_transfer``)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.checks import ledger_check
from payments.models import (
    LedgerTransaction,
    LocalPayout,
    LocalTransfer,
    Payout,
    PayoutPolicy,
    PayoutStep,
)
from payments.payouts import sending as payout_sending
from payments.payouts.freezes import seller_freeze
from payments.payouts.guard import payout_frozen_reason
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send, payouts_sweep
from payments.processors.local import LocalProcessor
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.test_concurrency_money import run_together

Status = Payout.Status
Step = PayoutStep.Kind
Outcome = PayoutStep.Outcome


def _payout(seller) -> Payout:
    """A released 100.00 sale at 10 % commission: a payout of 90.00, made, not sent."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run_payouts(sellers=[seller])
    return Payout.objects.filter(seller=seller).latest("pk")


def _while_transferring(monkeypatch, then):
    """Run ``then()`` while the transfer call is at the processor (no lock held)."""
    real = LocalProcessor.transfer_create

    def transfer_create(self, **kwargs):
        then()
        return real(self, **kwargs)

    monkeypatch.setattr(LocalProcessor, "transfer_create", transfer_create)


@pytest.mark.django_db
def test_a_freeze_during_the_transfer_call_stops_the_bank_payout_claimed_with_it(
    seller, monkeypatch
):
    """The bank payout's attempt is claimed in the transaction that records the
    transfer: the freeze that landed during the transfer call must still be seen."""
    payout = _payout(seller)
    _while_transferring(
        monkeypatch, lambda: seller_freeze(seller=seller, by=None, reason="Fraud check")
    )

    payout_send(payout=Payout(pk=payout.pk))
    payout_send(payout=Payout(pk=payout.pk))  # the sweeper, later: still nothing

    payout.refresh_from_db()
    assert payout.status == Status.TRANSFERRED
    assert payout.failure_reason == "Payouts frozen: Fraud check"
    assert payout.next_attempt_at is None
    assert LocalTransfer.objects.count() == 1
    assert not LocalPayout.objects.exists()
    assert not payout.steps.filter(kind=Step.BANK_PAYOUT).exists()
    assert ledger_check().ok


@pytest.mark.django_db
def test_a_second_sender_during_the_transfer_call_calls_nothing(seller, monkeypatch):
    """A redelivered task (or the sweeper) meets the attempt ``_start`` claimed with
    the sent marking: it does nothing; the first sender goes on to the bank."""
    payout = _payout(seller)
    seconds: list[Payout] = []
    _while_transferring(
        monkeypatch, lambda: seconds.append(payout_send(payout=Payout(pk=payout.pk)))
    )

    done = payout_send(payout=Payout(pk=payout.pk))

    assert seconds[0].status == Status.SENDING  # the second one saw the attempt in flight
    assert done.status in (Status.IN_TRANSIT, Status.PAID)
    assert list(payout.steps.order_by("pk").values_list("kind", "attempt", "outcome")) == [
        (Step.TRANSFER, 1, Outcome.SUCCEEDED),
        (Step.BANK_PAYOUT, 1, Outcome.SUCCEEDED),
    ]
    assert LocalTransfer.objects.count() == 1
    assert LocalPayout.objects.count() == 1
    payout_send(payout=Payout(pk=payout.pk))  # redelivered once more, after it all
    assert LocalTransfer.objects.count() == LocalPayout.objects.count() == 1
    assert PayoutStep.objects.count() == 2
    assert ledger_check().ok


@pytest.mark.django_db
def test_a_crash_in_the_merged_bank_claim_loses_the_record_not_the_money(
    seller, monkeypatch, settings
):
    """The transfer's record and the bank claim are one transaction now: a crash in
    the claim rolls back the record of a transfer the processor made. The attempt is
    then unanswered; after the lease the next attempt looks it up and adopts it: one
    transfer, one bank payout, the ledger whole."""
    payout = _payout(seller)

    def crash(*args, **kwargs):
        raise RuntimeError("worker died in the bank claim")

    with monkeypatch.context() as patch:
        patch.setattr("payments.payouts.sending._bank_payout_waits", crash)
        with pytest.raises(RuntimeError):
            payout_send(payout=Payout(pk=payout.pk))

    payout.refresh_from_db()
    assert payout.status == Status.SENDING  # the transferred record was rolled back
    assert LocalTransfer.objects.count() == 1  # but the processor made it
    step = payout.steps.get()
    assert step.outcome == Outcome.IN_FLIGHT
    assert not LedgerTransaction.objects.filter(
        idempotency_key=f"payout:{payout.pk}:transferred"
    ).exists()

    past = timezone.now() - timedelta(seconds=settings.PAYMENTS_PROCESSOR_CALL_LEASE_SECONDS + 1)
    PayoutStep.objects.filter(pk=step.pk).update(started_at=past)
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=past)
    payouts_sweep()

    payout.refresh_from_db()
    assert payout.status in (Status.IN_TRANSIT, Status.PAID)
    assert LocalTransfer.objects.count() == 1
    assert LocalPayout.objects.count() == 1
    assert list(payout.steps.order_by("pk").values_list("kind", "attempt", "outcome")) == [
        (Step.TRANSFER, 1, Outcome.ERROR),
        (Step.TRANSFER, 2, Outcome.ADOPTED),
        (Step.BANK_PAYOUT, 1, Outcome.SUCCEEDED),
    ]
    assert ledger_check().ok


@pytest.mark.django_db
def test_the_one_statement_read_answers_as_the_orm_reads_did():
    """``_payout_made_and_held`` against ``LocalPayout...exists()`` and
    ``account_balance``: no rows at all, reversals, failed payouts, another currency,
    another account, and keys and accounts that would break a string-built query."""
    processor = LocalProcessor()

    def both(key: str, account: str, currency: str):
        orm = (
            LocalPayout.objects.filter(idempotency_key=key).exists(),
            processor.account_balance(account_id=account, currency=currency),
        )
        return LocalProcessor._payout_made_and_held(key, account, currency), orm

    raw, orm = both("k-1", "acct_a", "USD")
    assert raw == orm == (False, 0)  # nothing at all: no NULL, no error

    for n, (destination, currency, amount, reversed_) in enumerate(
        [
            ("acct_a", "USD", 9000, 0),
            ("acct_a", "USD", 5000, 1200),
            ("acct_a", "EUR", 700, 0),
            ("acct_b", "USD", 100000, 0),
            ("x' OR '1'='1", "USD", 3, 0),
        ]
    ):
        LocalTransfer.objects.create(
            id=f"tr_{n}",
            amount_minor=amount,
            currency=currency,
            destination=destination,
            reversed_minor=reversed_,
            idempotency_key=f"t-{n}",
        )
    for n, (account, currency, amount, status) in enumerate(
        [
            ("acct_a", "USD", 4000, "paid"),
            ("acct_a", "USD", 2500, "failed"),
            ("acct_a", "USD", 1000, "in_transit"),
            ("acct_a", "EUR", 200, "paid"),
        ]
    ):
        LocalPayout.objects.create(
            id=f"po_{n}",
            account=account,
            amount_minor=amount,
            currency=currency,
            status=status,
            idempotency_key=f"k-{n}",
        )

    cases = [
        ("k-0", "acct_a", "USD"),  # made; 9000 + 3800 - 4000 - 1000
        ("k-1", "acct_a", "USD"),  # a failed one was made with this key too
        ("k-9", "acct_a", "EUR"),
        ("k-9", "acct_b", "USD"),
        ("k-9", "acct_c", "USD"),
        ("x' OR '1'='1", "acct_a", "USD"),  # no key matches: not "made"
        ("k-9", "x' OR '1'='1", "USD"),  # only its own 3
        ("k-9", "acct_%", "USD"),  # no LIKE: nothing
    ]
    for key, account, currency in cases:
        raw, orm = both(key, account, currency)
        assert raw == orm, (key, account, currency)
    assert both("k-0", "acct_a", "USD")[0] == (True, 7800)
    assert both("k-9", "x' OR '1'='1", "USD")[0] == (False, 3)


@pytest.mark.django_db
def test_the_freeze_read_follows_the_sellers_own_policy_else_the_default(seller):
    """One statement for the seller's policy and the default: the seller's own governs
    (frozen or not); the default only for a seller without one."""
    other = SellerFactory()
    mine, theirs = Payout(seller_id=seller.pk), Payout(seller_id=other.pk)
    assert payout_frozen_reason(mine) is None  # no policy rows at all

    PayoutPolicy.objects.create(seller=None, frozen=True, frozen_reason="Platform audit")
    own = PayoutPolicy.objects.create(seller=seller, frozen=False)
    assert payout_frozen_reason(mine) is None  # its own, not frozen, governs
    assert payout_frozen_reason(theirs) == "Payouts frozen: Platform audit"

    own.frozen, own.frozen_reason = True, "KYC"
    own.save()
    PayoutPolicy.objects.filter(seller=None).update(frozen=False)
    assert payout_frozen_reason(mine) == "Payouts frozen: KYC"
    assert payout_frozen_reason(theirs) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(4))
def test_a_freeze_racing_the_send_never_lets_a_bank_payout_out_after_it(seller, round_):
    """A freeze and a send at once, on PostgreSQL: the freeze holds the payout, or
    the send went first and the freeze stops it before its bank payout, or the send
    claimed its bank payout before the freeze committed. Never a bank payout whose
    claim came after the freeze; never two transfers; the ledger whole."""
    payout = _payout(seller)

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
    payout = _payout(seller)
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
