"""Reconciliation of our ledger with the processor's balance transactions, on the
local processor through the real flows (payment, fee, refund, payout, dispute)."""

from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_start
from payments.collection.refunds import refund_create, refund_submit
from payments.models import Payout
from payments.payouts.holds import holds_release_due
from payments.payouts.runs import run_payouts
from payments.payouts.settlement import payout_failed
from payments.processors.base import BalanceTransaction
from payments.processors.local import CARD_DISPUTED, CARD_SUCCEEDS, LocalProcessor
from payments.reporting.reconciliation import Reconciliation, _theirs, reconcile
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts

pytestmark = pytest.mark.django_db
local = LocalProcessor()


def _window():
    now = timezone.now()
    return {"since": now - timedelta(hours=1), "until": now + timedelta(hours=1)}


@pytest.fixture
def trading_day(run, customer, seller, settings):
    """A paid order, a refund through the processor, and a payout of the rest."""
    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    product = ProductFactory(seller=seller, price_minor=5000, stock=5)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 2)])
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    run(refund_submit, refund=refund_create(order=order, amount_minor=1000))
    run(holds_release_due)
    return order


def test_a_day_of_payments_refunds_and_payouts_reconciles(run, trading_day):
    run(run_payouts)
    assert Payout.objects.get().status == "paid"

    report = reconcile(**_window())

    assert report.ok, report.differences
    assert report.matched == 4  # charge, fee, refund, transfer
    assert report.ours_total == report.theirs_total


def _sent_without_its_event(django_capture_on_commit_callbacks):
    from payments.payouts.sending import payout_send

    with django_capture_on_commit_callbacks(execute=False):
        run_payouts()
    payout = Payout.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        payout_send(payout=payout)  # its payout.paid event is never processed
    payout.refresh_from_db()
    return payout


def test_a_payout_whose_bank_payout_failed_reconciles(
    trading_day, django_capture_on_commit_callbacks
):
    """The platform's cash moves at the transfer, which is recorded at once: a bank
    payout refused or returned later changes the connected account, not the platform's
    balance, so nothing is left to explain."""
    payout = _sent_without_its_event(django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        payout_failed(payout=payout, reason="The bank refused it.")
    payout.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED

    report = reconcile(**_window())

    assert report.ok, report.differences
    assert report.matched == 4  # charge, fee, refund, transfer


class Killed(BaseException):
    """The worker dies (SIGKILL): nothing after this point runs."""


def test_a_transfer_whose_answer_was_lost_is_a_difference_until_looked_up(
    run, trading_day, monkeypatch, django_capture_on_commit_callbacks
):
    from payments.payouts.sending import payout_send

    def killed(*args, **kwargs):
        raise Killed

    with django_capture_on_commit_callbacks(execute=False):
        run_payouts()
    payout = Payout.objects.get()
    with monkeypatch.context() as patch:
        patch.setattr("payments.payouts.sending.payout_transferred_locked", killed)
        with pytest.raises(Killed):
            payout_send(payout=payout)

    (difference,) = reconcile(**_window()).differences
    assert (difference.movement, difference.ours, difference.theirs) == (
        "transfer",
        None,
        -payout.amount_minor,
    )
    assert "not recorded yet" in difference.note

    payout.steps.update(started_at=timezone.now() - timedelta(hours=1))
    Payout.objects.filter(pk=payout.pk).update(
        next_attempt_at=timezone.now()
    )  # the sweeper  # the lease is over
    run(payout_send, payout=payout)
    assert reconcile(**_window()).ok


def test_a_dispute_withdrawal_reconciles(run, customer, seller):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=3000, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_DISPUTED)

    report = reconcile(**_window())

    assert report.ok, report.differences
    assert report.matched == 3  # charge, fee, dispute withdrawal


def test_a_ledger_movement_the_processor_never_saw_is_a_difference(run, trading_day):
    from payments.ledger.posting import Posting, ledger_post, platform_account

    ledger_post(
        kind="adjustment",
        idempotency_key="adjustment:cash-found",
        reference_type="note",
        reference_id="1",
        postings=[
            Posting(platform_account("processor", "USD"), 700),
            Posting(platform_account("commission", "USD"), -700),
        ],
    )

    (difference,) = reconcile(**_window()).differences

    assert (difference.ours, difference.theirs) == (700, None)
    assert "not at the processor" in difference.note


def test_the_command_exits_non_zero_on_differences(run, trading_day, capsys):
    run(run_payouts)
    call_command("reconcile", "--hours", "2")
    assert "0 differences" in capsys.readouterr().out

    Payout.objects.update(processor_transfer_id="tr_somewhere_else")
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "--hours", "2")
    assert exited.value.code == 1


def test_operators_see_the_reconciliation_page(run, trading_day, operator_client):
    run(run_payouts)
    page = operator_client.get(reverse("admin:payments_reconciliationreport_changelist"))

    assert page.status_code == 200
    assert "No differences" in page.text


def test_the_reconciliation_api_is_for_operators(run, trading_day, operator, seller):
    from rest_framework.test import APIClient

    from accounts.tokens import api_token_create

    today = timezone.localdate().isoformat()
    url = reverse("api:reconciliation")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=operator, name='t').raw}")
    body = client.get(url, {"start": today, "end": today}).json()
    too_long = client.get(url, {"start": "2026-01-01", "end": "2026-03-01"})
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=seller.user, name='t').raw}"
    )

    assert body["matched"] == 3 and body["differences"] == []
    assert too_long.status_code == 400
    assert client.get(url, {"start": today, "end": today}).status_code == 403


def test_a_dispute_fee_at_the_processor_is_a_difference():
    report = Reconciliation(since=datetime(2026, 1, 1), until=datetime(2026, 1, 2))
    fee_charged = BalanceTransaction(
        id="txn_1",
        type="adjustment",
        amount_minor=-5000,
        fee_minor=1500,
        net_minor=-6500,
        currency="USD",
        source="du_1",
        created=datetime(2026, 1, 1),
    )

    theirs = _theirs([fee_charged], report)

    assert theirs[("dispute_fee", "du_1", "USD")] == -1500
