from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from marketplace.kernel.errors import InvalidState
from payments.checks import ledger_check
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.balances import seller_balance
from payments.models import (
    LedgerTransaction,
    LocalAccount,
    LocalEvent,
    LocalPayout,
    LocalTransfer,
    Payout,
    PayoutPolicy,
    PayoutStep,
)
from payments.payouts.breakdown import payout_breakdown
from payments.payouts.controls import payout_approve
from payments.payouts.freezes import seller_freeze
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send, payouts_sweep
from payments.payouts.settlement import payout_sync
from payments.processors.local import LocalProcessor
from tests.factories import UserFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.payouts.helpers import made_payout

pytestmark = pytest.mark.django_db


Status = Payout.Status


Step = PayoutStep.Kind


Outcome = PayoutStep.Outcome


def _while_transferring(monkeypatch, then):
    """Run ``then()`` while the transfer call is at the processor (no lock held)."""
    real = LocalProcessor.transfer_create

    def transfer_create(self, **kwargs):
        then()
        return real(self, **kwargs)

    monkeypatch.setattr(LocalProcessor, "transfer_create", transfer_create)


def test_a_run_pays_the_available_balance_once_and_the_event_settles_it(run, earning):
    report = run(run_payouts)

    payout = Payout.objects.get()
    assert [p.amount_minor for p in report.planned] == [9000]
    assert payout.status == Payout.Status.PAID
    assert LocalTransfer.objects.get().amount_minor == 9000
    bank_payout = LocalPayout.objects.get()
    assert bank_payout.amount_minor == 9000
    # The bank account it went to and the day it arrives (two days after it was made).
    assert payout.bank_last4 == "6789"
    assert payout.arrival_on == bank_payout.created_at.date() + timedelta(days=2)
    balance = seller_balance(seller=earning, currency="USD")
    assert (balance.available, balance.in_transit, balance.paid_out) == (0, 0, 9000)
    breakdown = payout.breakdown.aggregate(total=Sum("entry__amount_minor"))["total"]
    assert -breakdown == payout.amount_minor
    assert ledger_check().ok

    run(run_payouts)
    assert Payout.objects.count() == 1


def test_a_dry_run_reports_and_writes_nothing(run, earning):
    report = run(run_payouts, dry_run=True)

    assert [(p.amount_minor, p.status) for p in report.planned] == [(9000, "scheduled")]
    assert not Payout.objects.exists()


def test_minimum_frozen_and_not_enabled_sellers_are_skipped(run, earning):
    policy = PayoutPolicy.objects.create(seller=earning, minimums={"USD": 10000})
    assert not run(run_payouts).planned

    policy.minimums, policy.frozen, policy.frozen_reason = {}, True, "Fraud review"
    policy.save()
    assert "payouts frozen (Fraud review)" in str(run(run_payouts).skipped[0])

    policy.frozen = False
    policy.save()
    earning.payout_status = "restricted"
    earning.save()
    assert "payout account not enabled" in str(run(run_payouts).skipped[0])
    assert not Payout.objects.exists()


def test_weekly_and_monthly_schedules_are_due_on_their_day(run, earning):
    PayoutPolicy.objects.create(seller=earning, schedule="weekly", weekday=2)
    tuesday = timezone.make_aware(timezone.datetime(2026, 12, 1, 9))
    wednesday = tuesday + timedelta(days=1)

    assert not run(run_payouts, now=tuesday).planned
    assert Payout.objects.count() == 0
    run(run_payouts, now=wednesday)
    assert Payout.objects.get().period == "2026-W49"


def test_a_large_payout_waits_for_a_second_operator(run, earning, operator):
    PayoutPolicy.objects.create(seller=earning, approval_thresholds={"USD": 5000})
    run(run_payouts, started_by=operator)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.AWAITING_APPROVAL
    assert not LocalPayout.objects.exists()

    with pytest.raises(InvalidState, match="cannot approve"):
        payout_approve(payout=payout, by=operator)
    run(payout_approve, payout=payout, by=UserFactory())

    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID


def _retry_due(payout):
    """Let the payout's backoff pass."""
    Payout.objects.filter(pk=payout.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_a_crash_after_the_processor_paid_does_not_pay_twice(run, earning, settings):
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "timeout_after"}
    report = run_payouts(dry_run=False)
    payout = report.planned[0].payout
    run(payout_send, payout=payout)
    assert LocalPayout.objects.count() == 1
    step = payout.steps.get(kind="bank_payout")
    # Its answer was lost, but its payout.paid event came: nothing left to look up.
    assert (step.outcome, step.object_status, step.attempt) == ("succeeded", "paid", 1)

    settings.PAYMENTS_LOCAL_FAULTS = {}
    _retry_due(payout)
    run(payout_send, payout=payout)

    assert LocalPayout.objects.count() == 1 and LocalTransfer.objects.count() == 1
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert seller_balance(seller=earning, currency="USD").paid_out == 9000
    assert ledger_check().ok


def test_a_refused_payout_returns_the_money_and_the_next_run_pays_it(run, earning):
    LocalAccount.objects.filter(pk=earning.payout_account_id).update(details_submitted=False)

    run(run_payouts)

    failed = Payout.objects.get()
    assert failed.status == Payout.Status.FAILED and "cannot receive" in failed.failure_reason
    assert seller_balance(seller=earning, currency="USD").available == 9000
    LocalAccount.objects.filter(pk=earning.payout_account_id).update(details_submitted=True)

    run(run_payouts, sellers=[earning])

    paid = Payout.objects.exclude(pk=failed.pk).get()
    assert (paid.status, paid.amount_minor) == (Payout.Status.PAID, 9000)
    assert seller_balance(seller=earning, currency="USD").paid_out == 9000
    assert ledger_check().ok


def test_a_refund_after_a_payout_is_a_debt_the_next_payout_nets(run, earning):
    run(run_payouts)
    first = Payout.objects.get().seller.seller_orders.get().order
    refund_mark_succeeded(refund=refund_create(order=first, amount_minor=2000))
    assert seller_balance(seller=earning, currency="USD").available == -1800

    second = paid_order([(earning, 5000, 1)])
    seller_order_hold_release(seller_order=second.seller_orders.get())
    run(run_payouts, sellers=[earning])

    latest = Payout.objects.order_by("-pk").first()
    assert latest.amount_minor == 4500 - 1800
    assert seller_balance(seller=earning, currency="USD").available == 0
    assert ledger_check().ok


def test_the_command(run, earning, capsys):
    run(call_command, "run_payouts", "--dry-run")
    assert "Would pay Acme $90.00 [scheduled]" in capsys.readouterr().out
    assert not Payout.objects.exists()

    run(call_command, "run_payouts", "--seller", earning.slug)
    assert Payout.objects.get().status == Payout.Status.PAID


def test_operators_hold_release_and_cancel_with_an_audit_trail(run, earning, operator):
    from payments.payouts.controls import payout_cancel, payout_hold, payout_release

    PayoutPolicy.objects.create(seller=earning, approval_thresholds={"USD": 1})
    run(run_payouts)
    payout = Payout.objects.get()

    payout_hold(payout=payout, by=operator, reason="Checking the seller's address")
    with pytest.raises(InvalidState):
        payout_hold(payout=payout, by=operator, reason="again")
    run(payout_release, payout=payout, by=operator)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.AWAITING_APPROVAL  # the hold skips no approval
    run(payout_approve, payout=payout, by=UserFactory(is_staff=True))
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID

    second_order = paid_order([(earning, 1000, 1)])
    seller_order_hold_release(seller_order=second_order.seller_orders.get())
    run(run_payouts, sellers=[earning])
    pending = Payout.objects.get(status=Payout.Status.AWAITING_APPROVAL)
    payout_cancel(payout=pending, by=operator, reason="Seller asked to wait")

    assert list(pending.audit_records.values_list("action", "reason", "actor")) == [
        ("cancel", "Seller asked to wait", operator.pk)
    ]
    assert [a.action for a in payout.audit_records.order_by("at", "id")] == [
        "hold",
        "release",
        "approve",
    ]
    assert seller_balance(seller=earning, currency="USD").available == 900  # still owed
    assert ledger_check().ok


def test_the_sweeper_sends_payouts_stuck_after_a_crash_or_a_short_balance(run, earning, settings):
    from payments.payouts.sending import payouts_sweep

    settings.PAYMENTS_LOCAL_FAULTS = {"transfer_create": "balance_insufficient"}
    run(run_payouts)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.SENDING
    assert "Waiting for the platform's processor balance" in payout.failure_reason
    assert seller_balance(seller=earning, currency="USD").in_transit == 9000

    settings.PAYMENTS_LOCAL_FAULTS = {}
    assert run(payouts_sweep, older_than_minutes=0) == 0  # backing off
    _retry_due(payout)
    assert run(payouts_sweep, older_than_minutes=0) == 1

    payout.refresh_from_db()
    assert (payout.status, payout.failure_reason) == (Payout.Status.PAID, "")
    assert LocalPayout.objects.count() == 1
    assert ledger_check().ok


def test_the_seller_sees_balances_next_payout_history_and_breakdown(run, earning, client):
    from django.urls import reverse

    client.force_login(earning.user)
    before = client.get(reverse("marketplace:seller_payouts")).content.decode()
    assert "$90.00" in before and "Next payout:" in before

    run(run_payouts)
    payout = Payout.objects.get()
    page = client.get(reverse("marketplace:seller_payouts")).content.decode()
    assert f"#{payout.pk}" in page and "Paid" in page
    detail = client.get(reverse("marketplace:seller_payout_detail", args=[payout.pk]))
    assert detail.status_code == 200
    assert [line.amount_minor for line in detail.context["breakdown"].lines] == [9000]
    assert "1 × " in detail.content.decode()
    assert "rolling reserve" not in detail.content.decode()

    client.force_login(UserFactory())
    assert (
        client.get(reverse("marketplace:seller_payout_detail", args=[payout.pk])).status_code == 302
    )


def test_the_breakdown_shows_what_the_rolling_reserve_kept_back(run, earning, client):
    from django.urls import reverse

    PayoutPolicy.objects.create(seller=earning, reserve_bps=1000, reserve_days=90)
    run(run_payouts)
    payout = Payout.objects.get()
    client.force_login(earning.user)

    detail = client.get(reverse("marketplace:seller_payout_detail", args=[payout.pk]))

    assert payout.amount_minor == 8100  # 90.00 released, 10% kept back
    breakdown = detail.context["breakdown"]
    assert (breakdown.entries_total, breakdown.kept_in_reserve, breakdown.carried) == (9000, 900, 0)
    page = detail.content.decode()
    assert "Kept in your rolling reserve, paid later" in page and "$81.00" in page


def test_a_reserve_released_later_is_shown_as_carried_not_as_a_negative_reserve(run, earning):
    PayoutPolicy.objects.create(seller=earning, reserve_bps=1000, reserve_days=30)
    run(run_payouts)
    run(run_payouts, now=timezone.now() + timedelta(days=31))
    first, second = Payout.objects.order_by("pk")

    one, two = payout_breakdown(payout=first), payout_breakdown(payout=second)

    assert (first.amount_minor, one.entries_total, one.kept_in_reserve, one.carried) == (
        8100,
        9000,
        900,
        0,
    )
    assert (second.amount_minor, two.entries_total, two.kept_in_reserve, two.carried) == (
        900,
        0,
        0,
        900,
    )


def test_a_refund_still_pending_is_shown_as_held_back(run, earning):
    order = earning.seller_orders.get().order
    refund = refund_create(order=order, amount_minor=5000)  # still pending at the processor
    assert refund.status == "pending"
    run(run_payouts)

    breakdown = payout_breakdown(payout=Payout.objects.get())

    assert breakdown.entries_total == 9000
    assert breakdown.carried == -4500  # the seller's part of the pending refund
    assert breakdown.payout.amount_minor == 4500


def test_the_seller_is_emailed_when_a_payout_is_sent_paid_or_fails(run, earning, mailoutbox):
    run(run_payouts)

    subjects = [m.subject for m in mailoutbox if m.to == [earning.user.email]]
    # The local processor pays at once, so "arrived" may come before "on its way".
    assert sorted(subjects) == ["Your payout has arrived", "Your payout is on its way"]

    LocalAccount.objects.filter(pk=earning.payout_account_id).update(details_submitted=False)
    second = paid_order([(earning, 1000, 1)])
    seller_order_hold_release(seller_order=second.seller_orders.get())
    mailoutbox.clear()
    run(run_payouts, sellers=[earning])

    failed = mailoutbox[-1]
    assert failed.subject == "Your payout did not go through"
    assert "The money is back in your available balance." in failed.body


def test_an_operator_pays_a_failed_payout_again(run, earning, operator):
    from payments.payouts.controls import payout_retry

    LocalAccount.objects.filter(pk=earning.payout_account_id).update(details_submitted=False)
    run(run_payouts)
    failed = Payout.objects.get()
    LocalAccount.objects.filter(pk=earning.payout_account_id).update(details_submitted=True)

    retried = run(payout_retry, payout=failed, by=operator, reason="Bank details fixed")
    with pytest.raises(InvalidState):
        payout_retry(payout=failed, by=operator)

    retried.refresh_from_db()
    assert (retried.status, retried.amount_minor, retried.period) == (
        Payout.Status.PAID,
        9000,
        f"retry-{failed.pk}",
    )
    assert failed.audit_records.get().reason == "Bank details fixed"
    assert ledger_check().ok


def test_a_refund_waiting_for_the_processor_is_not_paid_out(run, earning):
    order = earning.seller_orders.get().order
    refund_create(order=order, amount_minor=5000)  # reserved, not yet confirmed

    run(run_payouts)

    assert Payout.objects.get().amount_minor == 9000 - 4500


def _sending_payout(run, settings):
    """A payout transferred whose bank payout's answer was lost (a timeout)."""
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "timeout_before"}
    payout = run_payouts(dry_run=False).planned[0].payout
    run(payout_send, payout=payout)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    payout.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED and not payout.processor_payout_id
    return payout


NAMED = {"attempt": "1"}


def test_a_paid_event_settles_the_payout_its_metadata_names_once(run, earning, settings):
    payout = _sending_payout(run, settings)
    event = {"processor_name": "local", "processor_payout_id": "po_local_x", "status": "paid"}
    metadata = {"payout_id": str(payout.pk), **NAMED}

    run(payout_sync, **event, metadata=metadata)
    run(payout_sync, **event, metadata=metadata)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    keys = LedgerTransaction.objects.filter(idempotency_key__startswith="payout:")
    assert sorted(keys.values_list("idempotency_key", flat=True)) == [
        f"payout:{payout.pk}:bank-1:paid",
        f"payout:{payout.pk}:sent",
        f"payout:{payout.pk}:transferred",
    ]
    assert payout.steps.get(kind="bank_payout").processor_object_id == "po_local_x"
    assert seller_balance(seller=earning, currency="USD").paid_out == 9000
    assert ledger_check().ok


def test_an_event_settles_the_payout_with_its_processor_id_not_the_one_named(
    run, earning, settings
):
    payout = _sending_payout(run, settings)
    payout.steps.filter(kind="bank_payout").update(processor_object_id="po_local_x")
    other = Payout.objects.create(
        seller=earning, currency="USD", amount_minor=1, period="other", status="scheduled"
    )

    run(
        payout_sync,
        processor_name="local",
        processor_payout_id="po_local_x",
        status="failed",
        metadata={"payout_id": str(other.pk), **NAMED},
    )

    payout.refresh_from_db()
    other.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED and other.status == Payout.Status.SCHEDULED
    assert "Bank payout failed" in payout.failure_reason
    balance = seller_balance(seller=earning, currency="USD")
    assert (balance.available, balance.in_transit) == (0, 9000)  # in its processor account


def test_an_event_for_no_payout_of_ours_changes_nothing(run, earning, settings):
    payout = _sending_payout(run, settings)

    for metadata in (
        {},
        {"payout_id": "not a number"},
        {"payout_id": str(payout.pk + 1), **NAMED},
        {"payout_id": str(payout.pk), "attempt": "2"},
    ):
        run(
            payout_sync,
            processor_name="local",
            processor_payout_id="po_local_x",
            status="paid",
            metadata=metadata,
        )

    payout.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True])
def test_the_local_processor_answers_a_repeated_key_with_the_first_transfer_and_payout(
    in_transaction, seller, eager_celery
):
    enable_payouts(seller)
    processor = LocalProcessor()
    account = seller.payout_account_id

    def send():
        transfer = processor.transfer_create(
            amount_minor=500,
            currency="USD",
            destination=account,
            transfer_group="g",
            source_charge="",
            metadata={},
            idempotency_key="k-transfer",
        )
        sent = processor.payout_create(
            account_id=account,
            amount_minor=500,
            currency="USD",
            metadata={},
            idempotency_key="k-payout",
        )
        return transfer.id, sent.id

    if in_transaction:
        with transaction.atomic():
            first, again = send(), send()
    else:
        first, again = send(), send()

    assert first == again
    assert (LocalTransfer.objects.count(), LocalPayout.objects.count()) == (1, 1)
    assert LocalEvent.objects.filter(type="payout.paid").count() == 1


class Killed(BaseException):
    """The worker dies (SIGKILL): nothing after this point runs."""


@pytest.mark.parametrize("lost", ["event", "delivery"])
def test_a_payout_whose_paid_event_was_lost_in_a_crash_is_settled_on_the_resend(
    run, earning, monkeypatch, lost
):
    """A worker killed between the processor's bank payout and recording it, its event
    lost too (seen in the fault test of a worker killed mid-run): once the attempt's
    lease is over, the next attempt looks the bank payout up by its metadata and adopts
    it, and the processor sends the event it never sent, or delivers it again."""
    payout = run_payouts(sellers=[earning]).created[0]  # its send task is not run here

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        if lost == "event":
            patch.setattr(LocalProcessor, "_emit", lambda *args, **kwargs: None)
        else:
            patch.setattr("payments.processors.local.enqueue_on_commit", lambda *a: None)
        patch.setattr("payments.payouts.sending._bank_sent", killed)
        with pytest.raises(Killed):
            payout_send(payout=payout)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED
    assert payout.steps.get(kind="bank_payout").outcome == "in_flight"
    run(payout_send, payout=payout)  # within the lease: another worker's call, left alone
    assert payout.steps.filter(kind="bank_payout").count() == 1
    payout.steps.update(started_at=timezone.now() - timedelta(hours=1))
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())  # the sweeper

    run(payout_send, payout=payout)  # the task, delivered again

    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert LocalPayout.objects.count() == 1 and LocalTransfer.objects.count() == 1
    assert [(st.attempt, st.outcome) for st in payout.steps.filter(kind="bank_payout")] == [
        (1, "adopted"),
        (2, "adopted"),
    ]
    assert seller_balance(seller=earning, currency="USD").paid_out == 9000
    assert ledger_check().ok


@pytest.mark.django_db
def test_a_freeze_during_the_transfer_call_stops_the_bank_payout_claimed_with_it(
    seller, monkeypatch
):
    """The bank payout's attempt is claimed in the transaction that records the
    transfer: the freeze that landed during the transfer call must still be seen."""
    payout = made_payout(seller)
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
    payout = made_payout(seller)
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
    payout = made_payout(seller)

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
