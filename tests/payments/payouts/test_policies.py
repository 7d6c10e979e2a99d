"""Per-seller payout policies: hold days, release on delivery, rolling reserve, manual
(bank transfer) payouts, and the record each payout run leaves."""

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from marketplace.kernel.errors import InvalidState
from marketplace.models import Order, SellerOrder
from payments.checks import ledger_check
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import AuditRecord, LocalTransfer, Payout, PayoutPolicy, PayoutRun
from payments.payouts.bank_transfers import bank_transfer_csv
from payments.payouts.controls import payout_approve, payout_mark_paid
from payments.payouts.holds import holds_release_due, seller_order_hold_release
from payments.payouts.planning import next_payout_for
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory, UserFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


def _paid_days_ago(order, days):
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - timedelta(days=days))


def test_a_sellers_own_hold_days_decide_when_their_earnings_are_released(
    settings, seller, other_seller
):
    settings.PAYMENTS_HOLD_DAYS = 7
    PayoutPolicy.objects.create(seller=seller, hold_days=2)
    for who in (seller, other_seller):
        _paid_days_ago(paid_order([(who, 1000, 1)]), 3)

    assert holds_release_due() == 1
    assert seller_balance(seller=seller, currency="USD").available == 1000
    assert seller_balance(seller=other_seller, currency="USD").pending == 1000


def test_a_saved_platform_default_overrides_the_settings(settings, seller):
    settings.PAYMENTS_HOLD_DAYS = 7
    PayoutPolicy.objects.create(seller=None, hold_days=1)
    _paid_days_ago(paid_order([(seller, 1000, 1)]), 2)

    assert holds_release_due() == 1


def test_release_on_delivery_is_per_seller(seller, other_seller):
    PayoutPolicy.objects.create(seller=seller, release_on_delivery=True)
    for who in (seller, other_seller):
        _paid_days_ago(paid_order([(who, 1000, 1)]), 30)

    assert holds_release_due() == 1  # only the other seller's, by the hold days
    assert seller_balance(seller=seller, currency="USD").pending == 1000

    SellerOrder.objects.filter(seller=seller).update(
        status=SellerOrder.Status.DELIVERED, delivered_at=timezone.now()
    )
    assert holds_release_due() == 1
    assert seller_balance(seller=seller, currency="USD").available == 1000


@pytest.fixture
def released(seller):
    """90.00 available to the seller (100.00 sale at 10%), released now."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_order_hold_release(seller_order=paid_order([(seller, 10000, 1)]).seller_orders.get())
    return seller


def test_a_rolling_reserve_keeps_back_its_share_until_the_window_passes(run, released):
    PayoutPolicy.objects.create(seller=released, reserve_bps=1000, reserve_days=90)

    estimate = next_payout_for(seller=released, currency="USD")
    assert (estimate.estimate_minor, estimate.reserve_minor) == (8100, 900)
    report = run(run_payouts)
    assert [(p.amount_minor, p.reserve_minor) for p in report.planned] == [(8100, 900)]
    assert seller_balance(seller=released, currency="USD").available == 900

    later = timezone.now() + timedelta(days=91)
    report = run(run_payouts, now=later)
    assert [p.amount_minor for p in report.planned] == [900]
    assert seller_balance(seller=released, currency="USD").paid_out == 9000
    assert ledger_check().ok


@pytest.fixture
def manual_seller(released):
    released.bank_account_holder = "Acme Trading Ltd"
    released.bank_account_number = "GB33BUKB20201555555555"
    released.bank_routing_code = "BUKBGB22"
    released.save()
    PayoutPolicy.objects.create(seller=released, method="manual")
    return released


def test_a_manual_payout_is_paid_from_the_csv_and_marked_paid_once(
    run, manual_seller, operator, mailoutbox
):
    report = run(run_payouts)

    payout = Payout.objects.get()
    assert (payout.method, payout.status, payout.run) == ("manual", "scheduled", report.run)
    assert not LocalTransfer.objects.exists()  # the processor is never asked

    rows = list(csv.DictReader(io.StringIO(bank_transfer_csv(report.run))))
    assert rows == [
        {
            "payout_id": str(payout.pk),
            "reference": f"PAYOUT-{payout.pk}",
            "beneficiary_name": "Acme Trading Ltd",
            "account_number": "GB33BUKB20201555555555",
            "routing_code": "BUKBGB22",
            "amount": "90.00",
            "currency": "USD",
            "seller": "acme",
        }
    ]

    run(payout_mark_paid, payout=payout, by=operator, bank_reference="BT-0001")
    run(payout_mark_paid, payout=payout, by=operator, bank_reference="BT-0001")

    payout.refresh_from_db()
    assert (payout.status, payout.bank_reference) == ("paid", "BT-0001")
    assert (payout.bank_last4, payout.arrival_on) == ("5555", payout.paid_at.date())
    balance = seller_balance(seller=manual_seller, currency="USD")
    assert (balance.available, balance.in_transit, balance.paid_out) == (0, 0, 9000)
    assert AuditRecord.objects.filter(action="mark_paid").count() == 1
    assert len(mailoutbox) == 1  # one "paid" email, not one per click
    assert "account ending 5555, with the reference BT-0001" in mailoutbox[0].body
    assert bank_transfer_csv(report.run).count("\n") == 1  # only the header is left
    books = platform_balance(currency="USD")
    assert (books.cash_at_processor, books.paid_from_bank) == (10000, 9000)
    assert ledger_check().ok


def test_a_manual_payout_above_the_threshold_waits_for_a_second_operator(
    run, manual_seller, operator
):
    PayoutPolicy.objects.filter(seller=manual_seller).update(approval_thresholds={"USD": 5000})
    report = run(run_payouts, started_by=operator)
    payout = Payout.objects.get()

    assert bank_transfer_csv(report.run).count("\n") == 1
    with pytest.raises(InvalidState):
        payout_mark_paid(payout=payout, by=operator, bank_reference="BT-1")
    with pytest.raises(InvalidState):
        payout_approve(payout=payout, by=operator)

    run(payout_approve, payout=payout, by=UserFactory(is_staff=True))
    assert bank_transfer_csv(report.run).count("\n") == 2


def test_marking_paid_needs_a_manual_payout_and_a_reference(run, released, manual_seller, operator):
    run(run_payouts)
    payout = Payout.objects.get()
    with pytest.raises(InvalidState, match="reference"):
        payout_mark_paid(payout=payout, by=operator, bank_reference="  ")
    Payout.objects.filter(pk=payout.pk).update(method="processor")
    with pytest.raises(InvalidState, match="manual"):
        payout_mark_paid(payout=payout, by=operator, bank_reference="BT-2")
    assert seller_balance(seller=released, currency="USD").paid_out == 0


def test_a_manual_seller_without_bank_details_is_skipped_with_the_reason(run, released):
    PayoutPolicy.objects.create(seller=released, method="manual")

    report = run(run_payouts)

    assert not Payout.objects.exists()
    assert "bank details missing" in str(report.skipped[0])
    assert report.run.skipped == [str(report.skipped[0])]


def test_the_bank_file_never_hands_a_spreadsheet_a_formula(run, manual_seller):
    manual_seller.bank_account_holder = '=HYPERLINK("http://evil")'
    manual_seller.save()
    report = run(run_payouts)

    assert "'=HYPERLINK" in bank_transfer_csv(report.run)


def test_each_run_is_recorded_and_a_dry_run_records_nothing(run, released, operator):
    run(run_payouts, dry_run=True)
    assert not PayoutRun.objects.exists()

    report = run(run_payouts, started_by=operator, trigger="admin")
    run_record = PayoutRun.objects.get()
    assert run_record == report.run
    assert (run_record.trigger, run_record.started_by, run_record.payouts_created) == (
        "admin",
        operator,
        1,
    )
    assert run_record.finished_at is not None


def test_the_command_records_its_run(run, released, eager_celery):
    out = io.StringIO()
    call_command("run_payouts", stdout=out)
    assert PayoutRun.objects.get().trigger == "command"
    assert "Payout run #" in out.getvalue()


def test_the_admin_previews_a_run_then_runs_it(operator_client, released, eager_celery):
    url = reverse("admin:payments_payoutrun_run")

    preview = operator_client.get(url)
    assert preview.status_code == 200
    assert "Would pay 1 payout" in preview.text
    assert not Payout.objects.exists() and not PayoutRun.objects.exists()

    response = operator_client.post(url, {"run": "1", "sellers": [released.pk]})

    run_record = PayoutRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:payments_payoutrun_change", args=[run_record.pk])
    assert Payout.objects.get().period.startswith("manual-")
    page = operator_client.get(response.url)
    assert page.status_code == 200 and "bank-transfers.csv" in page.text


def test_the_admins_run_for_every_seller_is_made_by_the_workers_chunk_by_chunk(
    operator_client, released, run
):
    url = reverse("admin:payments_payoutrun_run")

    response = run(operator_client.post, url, {"run": "1"})

    run_record = PayoutRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:payments_payoutrun_change", args=[run_record.pk])
    assert (run_record.trigger, run_record.chunks_total, run_record.chunks_done) == ("admin", 1, 1)
    assert run_record.finished_at is not None and run_record.payouts_created == 1
    payout = Payout.objects.get()
    assert (payout.seller, payout.amount_minor, payout.run) == (released, 9000, run_record)
    page = operator_client.get(response.url)
    assert "1 / 1" in page.text


def test_the_admins_run_for_every_seller_answers_before_its_chunks_are_made(
    operator_client, released, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = operator_client.post(reverse("admin:payments_payoutrun_run"), {"run": "1"})

    run_record = PayoutRun.objects.get()
    assert response.status_code == 302
    assert (run_record.chunks_total, run_record.chunks_done, run_record.finished_at) == (1, 0, None)
    assert not Payout.objects.exists()
    assert len(queued) == 1  # the chunk's task, published once the run commits
    page = operator_client.get(response.url)
    assert "0 / 1" in page.text
    assert "Ready when the run has finished" in page.text and "bank-transfers.csv" not in page.text


def test_the_admin_downloads_the_bank_file_and_marks_paid(
    run, operator_client, operator, manual_seller
):
    report = run(run_payouts)
    payout = Payout.objects.get()

    download = operator_client.get(reverse("admin:payments_payoutrun_csv", args=[report.run.pk]))
    assert download["Content-Type"].startswith("text/csv")
    assert f"PAYOUT-{payout.pk}" in download.content.decode()

    operator_client.post(
        reverse("admin:payments_payout_changelist"),
        {"action": "mark_paid", "_selected_action": [payout.pk], "reason": "BT-77"},
    )
    payout.refresh_from_db()
    assert (payout.status, payout.bank_reference) == ("paid", "BT-77")


def test_customers_cannot_run_payouts_or_read_bank_files(customer_client, released):
    run_record = PayoutRun.objects.create(trigger="admin")
    assert customer_client.get(reverse("admin:payments_payoutrun_run")).status_code == 302
    csv_url = reverse("admin:payments_payoutrun_csv", args=[run_record.pk])
    assert customer_client.get(csv_url).status_code == 302
    assert not Payout.objects.exists()


def test_the_earnings_page_shows_the_sellers_effective_terms(seller_client, seller):
    PayoutPolicy.objects.create(
        seller=seller, schedule="weekly", weekday=4, hold_days=3, reserve_bps=500, reserve_days=60
    )

    page = seller_client.get(reverse("marketplace:seller_payouts")).text

    assert "Weekly on Friday" in page
    assert "3 days after payment" in page
    assert "5% of the earnings released in the last 60 days" in page


def test_a_dry_run_counts_the_holds_a_real_run_would_release(run, seller, settings):
    from payments.ledger.balances import seller_balance as balance

    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    paid_order([(seller, 10000, 1)])  # still pending: its hold is due but not released

    preview = run(run_payouts, dry_run=True)

    assert [(p.amount_minor, p.status) for p in preview.planned] == [(9000, "scheduled")]
    assert preview.holds_released == 1
    assert balance(seller=seller, currency="USD").pending == 9000  # nothing was released
    assert [p.amount_minor for p in run(run_payouts).planned] == [9000]


@pytest.mark.parametrize(
    ("bps", "shown"), [(1000, "10"), (2000, "20"), (1250, "12.5"), (5, "0.05"), (0, "0")]
)
def test_a_reserve_reads_as_a_plain_percentage(bps, shown):
    assert str(PayoutPolicy(reserve_bps=bps).reserve_percent) == shown
