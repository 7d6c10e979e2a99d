"""Payout run chunks under concurrency, on PostgreSQL with real connections: chunks
finishing together, a chunk run twice at once, runs racing, and a freeze or a refund
meeting a chunk (``tests.concurrency.race``: the first holds its locks while the
second starts)."""

import threading

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from payments.checks import ledger_check
from payments.collection.refunds import refund_create
from payments.models import Payout, PayoutEntry, PayoutRun
from payments.payouts.freezes import seller_freeze
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import payout_run_chunk_make, payout_run_start, run_payouts
from tests.concurrency import race
from tests.factories import CommissionRuleFactory, SellerFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sellers(db):
    """Four sellers with 90.00 available each."""
    CommissionRuleFactory(percentage_bps=1000)
    made = []
    for _ in range(4):
        seller = enable_payouts(SellerFactory())
        order = paid_order([(seller, 10000, 1)])
        seller_order_hold_release(seller_order=order.seller_orders.get())
        made.append(seller)
    return made


def together(*works):
    """Run each work in its own thread and connection, released at the same moment."""
    barrier, results = threading.Barrier(len(works)), [None] * len(works)

    def worker(i, work):
        try:
            barrier.wait(10)
            results[i] = work()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, w)) for i, w in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_the_last_two_chunks_finishing_together_finish_the_run_once(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 1
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    payout_run_chunk_make(run_id=run.pk, number=0, now=now)
    payout_run_chunk_make(run_id=run.pk, number=1, now=now)

    results = together(
        lambda: payout_run_chunk_make(run_id=run.pk, number=2, now=now),
        lambda: payout_run_chunk_make(run_id=run.pk, number=3, now=now),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.run_finished for r in results) == [False, True]
    run.refresh_from_db()
    assert (run.chunks_done, run.chunks_total, run.payouts_created) == (4, 4, 4)
    assert run.finished_at is not None
    assert run.sends_scheduled == 4


def test_one_chunk_made_by_two_workers_at_once_is_made_once(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 10
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)

    results = together(
        lambda: payout_run_chunk_make(run_id=run.pk, number=0, now=now),
        lambda: payout_run_chunk_make(run_id=run.pk, number=0, now=now),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.done_before for r in results) == [False, True]
    run.refresh_from_db()
    assert (run.chunks_done, run.payouts_created, run.sends_scheduled) == (1, 4, 4)
    assert Payout.objects.count() == 4 and PayoutEntry.objects.count() == 4


def test_two_chunked_runs_racing_pay_each_seller_once(sellers, settings):
    settings.PAYOUT_RUN_CHUNK_SIZE = 1

    results = together(run_payouts, run_payouts)

    assert not [r for r in results if isinstance(r, Exception)], results
    per_seller = Payout.objects.values("seller", "period").annotate(n=Count("pk"))
    assert len(per_seller) == 4 and {row["n"] for row in per_seller} == {1}
    assert sorted(Payout.objects.values_list("amount_minor", flat=True)) == [9000] * 4
    assert sum(r.run.payouts_created for r in results) == 4
    assert all(run.finished_at for run in PayoutRun.objects.all())
    assert PayoutEntry.objects.count() == 4
    assert ledger_check().ok


def test_a_refund_holding_the_seller_s_lock_is_counted_by_the_chunk_that_waited(sellers, settings):
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)
    order = sellers[0].seller_orders.get().order

    outcome = race(
        lambda: refund_create(order=order, amount_minor=5000),
        lambda: payout_run_chunk_make(run_id=run.pk, number=0, now=now),
    )

    assert "error" not in outcome, outcome
    assert Payout.objects.get(seller=sellers[0]).amount_minor == 9000 - 4500
    assert Payout.objects.count() == 4


def test_a_freeze_holding_the_seller_s_lock_is_seen_by_the_chunk_that_waited(
    sellers, settings, operator
):
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)

    outcome = race(
        lambda: seller_freeze(seller=sellers[0], by=operator, reason="Fraud review"),
        lambda: payout_run_chunk_make(run_id=run.pk, number=0, now=now),
    )

    assert "error" not in outcome, outcome
    assert "payouts frozen (Fraud review)" in str(outcome["value"].skipped[0])
    assert not Payout.objects.filter(seller=sellers[0]).exists()
    assert Payout.objects.count() == 3


def test_a_freeze_meeting_a_chunk_in_progress_holds_the_payout_it_made(sellers, settings, operator):
    now = timezone.now()
    run = payout_run_start(now=now, fan_out=False)

    outcome = race(
        lambda: payout_run_chunk_make(run_id=run.pk, number=0, now=now),
        lambda: seller_freeze(seller=sellers[0], by=operator, reason="Fraud review"),
    )

    assert "error" not in outcome, outcome
    assert outcome["value"].payouts_held == 1
    assert Payout.objects.get(seller=sellers[0]).status == Payout.Status.HELD
