"""Payout runs in chunks (payments/payouts/runs.py): the same amounts as the per-seller
rule, chunks made once, progress counted once, sends paced across the whole run."""

import random

import pytest
from django.db.models import Sum
from django.utils import timezone

from payments.checks import ledger_check
from payments.collection.refunds import refund_create
from payments.ledger.posting import Posting, ledger_post, seller_account
from payments.models import (
    LedgerAccount,
    LedgerEntry,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    PayoutRun,
    PayoutRunChunk,
)
from payments.payouts.freezes import seller_freeze
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.planning import PAYOUT_TXN_KINDS, next_payout_for
from payments.payouts.runs import chunk_ranges, payout_run_chunk_make, payout_run_start, run_payouts
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


def earning_seller(*sales, policy=None, enabled=True):
    """A seller whose sales (at 10% commission) are paid and released."""
    seller = SellerFactory()
    if enabled:
        enable_payouts(seller)
    if policy is not None:
        PayoutPolicy.objects.create(seller=seller, **policy)
    for price in sales:
        order = paid_order([(seller, price, 1)])
        seller_order_hold_release(seller_order=order.seller_orders.get())
    return seller


@pytest.fixture
def commission(db):
    return CommissionRuleFactory(percentage_bps=1000)


@pytest.fixture
def sellers(commission):
    """Five sellers paid 90.00, 180.00, ... each."""
    return [earning_seller(10000 * (n + 1)) for n in range(5)]


def chunks_of(run):
    return list(PayoutRunChunk.objects.filter(run=run).order_by("number"))


def earn(seller, price):
    order = paid_order([(seller, price, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())


def test_chunk_ranges_cover_every_seller_with_money_once_in_chunks_of_the_size(sellers):
    ranges = list(chunk_ranges(size=2))

    ids = sorted(seller.pk for seller in sellers)
    # No gaps: from 0, each range just after the one before, the last unbounded.
    assert ranges == [(0, ids[1]), (ids[1] + 1, ids[3]), (ids[3] + 1, None)]


def test_a_chunked_run_pays_what_the_per_seller_rule_pays_each_seller(commission, settings):
    """A comparison over varied sellers: reserves, minimums, approval thresholds,
    pending refunds, frozen and not enabled ones, several sales each."""
    rng = random.Random(18)
    sellers = []
    for n in range(12):
        policy = rng.choice(
            [
                None,
                {"reserve_bps": 1000},
                {"minimums": {"USD": 15000}},
                {"approval_thresholds": {"USD": 10000}},
                {"frozen": True, "frozen_reason": "Fraud review"},
            ]
        )
        sales = [rng.randrange(1000, 20000) for _ in range(rng.randint(1, 3))]
        seller = earning_seller(*sales, policy=policy, enabled=n != 3)
        if n % 4 == 1:  # a refund still pending at the processor claims part of it
            order = seller.seller_orders.first().order
            refund_create(order=order, amount_minor=500)
        sellers.append(seller)
    expected = {}
    for seller in sellers:
        estimate = next_payout_for(seller=seller, currency="USD").estimate_minor
        policy = PayoutPolicy.objects.filter(seller=seller).first()
        minimum = (policy.minimums if policy else {}).get("USD", 0)
        frozen = policy is not None and policy.frozen
        if estimate > 0 and estimate >= minimum and not frozen and seller.payout_account_id:
            expected[seller.pk] = estimate
    settings.PAYOUT_RUN_CHUNK_SIZE = 5
    dry = run_payouts(dry_run=True)

    report = run_payouts()

    made = dict(Payout.objects.values_list("seller_id", "amount_minor"))
    assert made == expected and len(made) >= 6
    assert [(p.seller.pk, p.amount_minor) for p in dry.planned] == [
        (p.seller.pk, p.amount_minor) for p in report.planned
    ]
    assert {str(skip) for skip in dry.skipped} == {str(skip) for skip in report.skipped}
    assert report.run.chunks_total == 3 == report.run.chunks_done
    assert report.run.payouts_created == len(expected)
    assert ledger_check().ok


def test_each_payout_s_breakdown_is_its_account_s_entries_not_paid_yet(sellers, run):
    run(run_payouts)  # paid: their breakdowns are written
    more = paid_order([(sellers[0], 5000, 1)])
    seller_order_hold_release(seller_order=more.seller_orders.get())

    run_payouts(now=timezone.now() + timezone.timedelta(days=1), fan_out=False)

    for payout in Payout.objects.all():
        account = LedgerAccount.objects.get(seller=payout.seller, kind="available")
        in_payouts = PayoutEntry.objects.exclude(payout=payout).values("entry_id")
        wanted = (
            LedgerEntry.objects.filter(account=account)
            .exclude(transaction_kind__in=PAYOUT_TXN_KINDS)
            .exclude(pk__in=in_payouts)
        )
        assert set(payout.breakdown.values_list("entry_id", flat=True)) == set(
            wanted.values_list("pk", flat=True)
        )
        total = payout.breakdown.aggregate(total=Sum("entry__amount_minor"))["total"]
        assert -total == payout.amount_minor
    assert Payout.objects.filter(seller=sellers[0]).count() == 2
    assert PayoutEntry.objects.count() == 6  # one release each, and the new one


def test_a_chunk_made_twice_makes_its_payouts_once(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)

    first = payout_run_chunk_make(run_id=run.pk, number=0, now=now)
    again = payout_run_chunk_make(run_id=run.pk, number=0, now=now)

    assert len(first.planned) == 2 and not first.done_before
    assert again.done_before and not again.planned
    run.refresh_from_db()
    assert (run.chunks_done, run.payouts_created, run.finished_at) == (1, 2, None)
    assert Payout.objects.count() == 2 and PayoutEntry.objects.count() == 2


def test_a_second_run_of_the_period_pays_nobody_twice_even_with_new_money(sellers, run):
    """The first run's payouts are sent (no longer claimed); new money comes in: the
    second run plans them again, and the unique period skips them."""
    run(run_payouts)
    more = paid_order([(sellers[0], 5000, 1)])
    seller_order_hold_release(seller_order=more.seller_orders.get())

    report = run(run_payouts)

    assert Payout.objects.count() == 5
    assert [(p.seller, p.payout) for p in report.planned] == [(sellers[0], None)]
    assert report.run.payouts_created == 0 and report.run.finished_at is not None
    assert PayoutEntry.objects.filter(entry__account__seller=sellers[0]).count() == 1


def test_the_scheduled_run_fans_out_one_task_per_chunk_and_finishes_with_the_last(
    sellers, settings, run
):
    settings.PAYOUT_RUN_CHUNK_SIZE = 2

    report = run(run_payouts, fan_out=True)

    run_record = PayoutRun.objects.get()
    assert report.run == run_record and report.planned == []
    assert (run_record.chunks_total, run_record.chunks_done) == (3, 3)
    assert run_record.finished_at is not None and run_record.payouts_created == 5
    assert all(chunk.done_at for chunk in chunks_of(run_record))
    assert set(Payout.objects.values_list("status", flat=True)) == {Payout.Status.PAID}


def test_progress_counts_each_chunk_once_and_the_run_finishes_once(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    assert run.progress_text == "0 / 3 chunks" and run.finished_at is None

    outcomes = [
        payout_run_chunk_make(run_id=run.pk, number=n, now=now).run_finished for n in (2, 0, 2)
    ]
    run.refresh_from_db()
    assert outcomes == [False, False, False] and run.progress_text == "2 / 3 chunks"
    assert run.finished_at is None
    assert payout_run_chunk_make(run_id=run.pk, number=1, now=now).run_finished
    run.refresh_from_db()
    finished_at = run.finished_at
    assert run.progress_text == "3 / 3 chunks" and finished_at is not None
    assert not payout_run_chunk_make(run_id=run.pk, number=1, now=now).run_finished
    run.refresh_from_db()
    assert run.finished_at == finished_at and run.chunks_done == 3


def test_a_run_with_nobody_to_pay_is_finished_at_once(commission):
    run = run_payouts().run

    assert (run.chunks_total, run.chunks_done) == (0, 0) and run.finished_at is not None


def test_sends_are_paced_across_the_whole_run_not_per_chunk(sellers, settings, monkeypatch, run):
    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    settings.PAYMENTS_PROCESSOR_WRITES_PER_SECOND = 2  # one payout a second
    queued = []
    monkeypatch.setattr(
        "payments.payouts.runs.enqueue",
        lambda task_name, *args, countdown=None: queued.append((task_name, args, countdown)),
    )

    run(run_payouts)

    payouts = list(Payout.objects.order_by("seller_id").values_list("pk", flat=True))
    assert [(name, args[0]) for name, args, _ in queued] == [
        ("payments.tasks.payout_send_task", pk) for pk in payouts
    ]
    # Each chunk's sends are timed from when it was made, after every earlier one's.
    waits = [countdown or 0 for _, _, countdown in queued]
    assert [round(wait) for wait in waits] == [0, 1, 2, 3, 4]
    assert PayoutRun.objects.get().sends_scheduled == 5


def test_a_freeze_or_a_refund_after_the_run_started_is_counted_by_its_chunk(
    sellers, settings, operator
):
    settings.PAYOUT_RUN_CHUNK_SIZE = 10
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    seller_freeze(seller=sellers[0], by=operator, reason="Fraud review")
    refund_create(order=sellers[1].seller_orders.get().order, amount_minor=5000)

    report = payout_run_chunk_make(run_id=run.pk, number=0, now=now)

    assert "payouts frozen (Fraud review)" in str(report.skipped[0])
    made = dict(Payout.objects.values_list("seller_id", "amount_minor"))
    assert sellers[0].pk not in made
    assert made[sellers[1].pk] == 18000 - 4500  # less the seller's part of the refund
    assert PayoutRunChunk.objects.get(run=run).skipped == [str(report.skipped[0])]


def test_a_manual_run_pays_only_the_named_sellers_in_chunks(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 1

    report = run_payouts(sellers=sellers[1:3])

    assert sorted(Payout.objects.values_list("seller_id", flat=True)) == sorted(
        s.pk for s in sellers[1:3]
    )
    assert report.run.chunks_total == 2 == report.run.chunks_done
    assert {p.period for p in Payout.objects.all()} == {
        f"manual-{timezone.localdate().isoformat()}"
    }


def test_the_run_s_pages_show_its_progress_in_chunks(
    sellers, settings, operator_client, operator, api_as
):
    from django.urls import reverse

    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    payout_run_chunk_make(run_id=run.pk, number=0, now=now)

    page = operator_client.get(reverse("admin:payments_payoutrun_change", args=[run.pk]))
    listing = operator_client.get(reverse("admin:payments_payoutrun_changelist"))
    api = api_as(operator).get(f"/api/v1/payout-runs/{run.pk}/")

    assert "chunks done / total" in page.text.lower() and "1 / 3" in page.text
    assert "1 / 3" in listing.text
    assert api.status_code == 200, api.content
    assert (api.json()["chunks_done"], api.json()["chunks_total"]) == (1, 3)
    assert api.json()["finished_at"] is None


def test_a_dry_run_nets_what_the_seller_owes(seller, settings, run):
    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    ledger_post(
        kind="adjustment",
        idempotency_key="adjustment:debt",
        reference_type="note",
        reference_id="1",
        postings=[
            Posting(seller_account(seller, "available", "USD"), 500),
            Posting(seller_account(seller, "pending", "USD"), -500),
        ],
    )
    seller_order = paid_order([(seller, 10000, 1)]).seller_orders.get()
    seller_order_hold_release(seller_order=seller_order)
    ledger_post(  # the 500 of pending moves out again, so only the debt remains
        kind="adjustment",
        idempotency_key="adjustment:debt-2",
        reference_type="note",
        reference_id="2",
        postings=[
            Posting(seller_account(seller, "pending", "USD"), 500),
            Posting(seller_account(seller, "available", "USD"), -500),
        ],
    )
    paid_order([(seller, 10000, 1)])  # due, not released

    dry = run_payouts(dry_run=True)
    real = run(run_payouts)

    assert [p.amount_minor for p in dry.planned] == [p.amount_minor for p in real.planned]


@pytest.mark.django_db
def test_a_fanned_out_manual_run_pays_only_the_named_sellers(commission, settings, run):
    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    sellers = [earning_seller(10000) for _ in range(4)]

    run(run_payouts, sellers=sellers[1:3], fan_out=True)

    paid = dict(Payout.objects.values_list("seller_id", "period"))
    manual = f"manual-{timezone.localdate().isoformat()}"
    assert paid == {sellers[1].pk: manual, sellers[2].pk: manual}


@pytest.mark.django_db
def test_money_arriving_after_the_cut_is_paid_whatever_the_seller_s_id(commission, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 1
    first = earning_seller(10000)
    between = earning_seller()  # no money yet: its id lies between two ranges
    last = earning_seller(10000)
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    assert [(c.first_seller_id, c.last_seller_id) for c in PayoutRunChunk.objects.all()] == [
        (0, first.pk),
        (first.pk + 1, None),  # no gap between ranges, none above the last
    ]
    earn(between, 10000)  # a release lands while the run is under way
    earn(last, 10000)  # same for a seller inside a range

    for number in range(run.chunks_total):
        payout_run_chunk_make(run_id=run.pk, number=number, now=now)

    paid = dict(Payout.objects.values_list("seller_id", "amount_minor"))
    assert paid[last.pk] == 18000  # inside a range: the new money is paid
    assert paid.get(between.pk) == 9000  # between the first ranges' sellers: paid too


@pytest.mark.django_db
def test_a_chunk_never_pays_more_than_the_balance_when_a_manual_run_came_first(commission):
    """Sound: a manual and a scheduled run the same day have different periods, so the
    unique (seller, currency, period) does not stop the second, but the claim of the
    first's open payout does: the seller is paid their balance once."""
    seller = earning_seller(10000)
    run_payouts(sellers=[seller])
    run_payouts()

    assert sum(Payout.objects.values_list("amount_minor", flat=True)) == 9000
    assert ledger_check().ok


@pytest.mark.django_db
def test_the_dry_run_plans_what_the_chunked_run_then_pays(commission, settings):
    """Sound: with holds due but not released, a reserve and a minimum, the preview's
    plans are the payouts the real run makes, seller by seller."""
    from datetime import timedelta

    from payments.models import PayoutPolicy

    settings.PAYOUT_RUN_CHUNK_SIZE = 2
    released = [earning_seller(10000 * (n + 1)) for n in range(3)]
    due = []
    for n in range(3):
        seller = enable_payouts(SellerFactory())
        paid_order([(seller, 5000 * (n + 1), 1)])
        due.append(seller)
    PayoutPolicy.objects.create(seller=released[0], reserve_bps=1500, reserve_days=30)
    PayoutPolicy.objects.create(seller=due[1], minimums={"USD": 100000})
    later = timezone.now() + timedelta(days=settings.PAYMENTS_HOLD_DAYS + 1)

    preview = run_payouts(now=later, dry_run=True)
    real = run_payouts(now=later)

    planned = {(p.seller.pk, p.currency): p.amount_minor for p in preview.planned}
    made = {(p.seller_id, p.currency): p.amount_minor for p in real.created}
    assert planned == made and len(made) == 5
    assert {str(s) for s in preview.skipped} == {str(s) for s in real.skipped}
    assert preview.holds_released == real.holds_released == 3


@pytest.mark.django_db
def test_a_chunk_that_fails_half_way_makes_nothing_and_its_retry_pays_once(
    commission, settings, monkeypatch
):
    """Sound: a chunk is one transaction: a failure after its payouts were inserted
    leaves no payout, no progress; the retry makes each payout once, with its breakdown."""
    from payments.payouts import runs as payout_runs

    settings.PAYOUT_RUN_CHUNK_SIZE = 10
    sellers = [earning_seller(10000) for _ in range(3)]
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    real = payout_runs._breakdown_insert

    def broken(payout_ids):
        real(payout_ids)
        raise RuntimeError("the worker died half way")

    monkeypatch.setattr(payout_runs, "_breakdown_insert", broken)
    with pytest.raises(RuntimeError):
        payout_run_chunk_make(run_id=run.pk, number=0, now=now)
    assert not Payout.objects.exists()
    run.refresh_from_db()
    assert run.chunks_done == 0 and run.finished_at is None

    monkeypatch.setattr(payout_runs, "_breakdown_insert", real)
    payout_run_chunk_make(run_id=run.pk, number=0, now=now)
    payout_run_chunk_make(run_id=run.pk, number=0, now=now)

    assert sorted(Payout.objects.values_list("seller_id", "amount_minor")) == [
        (s.pk, 9000) for s in sellers
    ]
    run.refresh_from_db()
    assert run.chunks_done == 1 and run.finished_at is not None
    assert ledger_check().ok
