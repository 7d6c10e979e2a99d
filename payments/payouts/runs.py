"""Payout runs in chunks: a run splits its sellers into chunks, each made into payouts
in one transaction with set-based statements, by one Celery task per chunk or inline.

``payout_run_start`` releases the due holds, creates the ``PayoutRun`` and its
``PayoutRunChunk`` rows: seller-id ranges of about ``PAYOUT_RUN_CHUNK_SIZE``
available accounts with money each, found by keyset over those accounts (two short
statements a chunk: never every seller in memory). ``payout_run_chunk_make`` makes
one chunk, in one transaction:

1. the chunk's row lock (a chunk done already is a no-op: retries and redeliveries
   change nothing);
2. the chunk's sellers' money locks (``payments.ledger.locks``, ids ascending), then their
   balances, claims, reserves, policies and frozen flags read in a few statements
   under those locks, so a refund or a freeze that lands meanwhile is counted;
3. ``payouts_plan`` (the rule every run, dry or not, follows: ``plan_payout``);
4. the payouts inserted in bulk; the unique (seller, currency, period) constraint
   skips those another run made first (``ON CONFLICT DO NOTHING``), so two runs of
   one period pay each seller once;
5. their breakdown written by one ``INSERT … SELECT`` (the entries of each payout's
   available account not in a payout yet, other than payout postings);
6. the run's progress under the run's row lock: ``chunks_done`` and the run's send
   counter (the chunk's sends are paced after every earlier chunk's: slots never
   restart), and ``finished_at`` set by the chunk that completes the run, once.

Each scheduled processor payout is then sent by its own task, ``send_delay(slot)``
after the chunk was made; the send tasks are published by one task per chunk once
it commits (``payout_sends_enqueue``), so the chunk's worker spends its time on chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Seller, User
from marketplace.kernel.task_queue import enqueue, enqueue_on_commit
from payments.ledger.locks import sellers_money_lock
from payments.ledger.retries import retry_on_conflict
from payments.models import (
    LedgerAccount,
    LedgerEntry,
    Payout,
    PayoutEntry,
    PayoutMethod,
    PayoutRun,
    PayoutRunChunk,
)
from payments.payouts.holds import holds_release_due
from payments.payouts.planning import (
    PAYOUT_TXN_KINDS,
    PayoutRunReport,
    PlannedPayout,
    SellerCurrency,
    SkippedSeller,
    payouts_plan,
    payouts_preview,
    send_delay,
)
from payments.payouts.sending import bank_payouts_retry_for_run

Kind = LedgerAccount.Kind
Status = Payout.Status
CHUNK_ROWS_BATCH = 1000  # chunk rows written per INSERT while a run is split
SKIPPED_KEPT = 1000  # skipped sellers listed on the run itself (each chunk keeps its own)


@dataclass
class ChunkReport:
    """What one chunk did (``done_before``: nothing, it had been made already)."""

    planned: list[PlannedPayout] = field(default_factory=list)
    skipped: list[SkippedSeller] = field(default_factory=list)
    done_before: bool = False
    run_finished: bool = False


def run_payouts(
    *,
    now: datetime | None = None,
    sellers: Sequence[Seller] | None = None,
    dry_run: bool = False,
    started_by: User | None = None,
    trigger: str = PayoutRun.Trigger.SCHEDULE,
    fan_out: bool = False,
) -> PayoutRunReport:
    """Create the payouts that are due (see the module docstring); ``dry_run`` writes nothing.

    A run is made in chunks of sellers (``payments.payouts.runs``): with ``fan_out``
    each chunk is a Celery task (the scheduled run), and the report has the run only;
    otherwise the chunks are made here, one transaction each, and the report lists
    every plan. Naming ``sellers`` pays them now whatever their schedule (a manual
    run, once a day per seller and currency).
    """
    now = now or timezone.now()
    report = PayoutRunReport()
    seller_ids = None if sellers is None else [seller.pk for seller in sellers]
    if dry_run:
        return payouts_preview(now=now, seller_ids=seller_ids)
    if fan_out and seller_ids is None:
        report.run = payout_run_start(
            now=now, sellers=seller_ids, started_by=started_by, trigger=trigger
        )
        report.holds_released = report.run.holds_released
        return report
    report.run, chunks = payout_run_inline(
        now=now, sellers=seller_ids, started_by=started_by, trigger=trigger
    )
    report.holds_released = report.run.holds_released
    for chunk in chunks:
        report.planned += chunk.planned
        report.skipped += chunk.skipped
    return report


def _with_money(seller_ids: Sequence[int] | None) -> QuerySet[LedgerAccount]:
    """Sellers' available accounts with money to pay (a positive available balance)."""
    accounts = LedgerAccount.objects.filter(
        kind=Kind.AVAILABLE, balance_minor__lt=0, seller_id__isnull=False
    )
    if seller_ids is not None:
        accounts = accounts.filter(seller_id__in=list(seller_ids))
    return accounts


def chunk_ranges(
    *, size: int, seller_ids: Sequence[int] | None = None
) -> Iterator[tuple[int, int | None]]:
    """Seller-id ranges (first, last; last None: no upper bound) of about ``size``
    available accounts with money each, in id order, two statements a range. The
    ranges leave no gap: the first starts at 0, each next one just after the one
    before, and the last has no upper bound, so a seller whose money arrives after
    the ranges were cut is in a chunk whatever their id. None when no one has money."""
    accounts = _with_money(seller_ids).order_by("seller_id").values_list("seller_id", flat=True)
    first, after = 0, None
    while True:
        rest = accounts if after is None else accounts.filter(seller_id__gt=after)
        last = list(rest[size - 1 : size])
        if not last:
            if after is None and not rest.exists():
                return
            yield first, None
            return
        if not rest.filter(seller_id__gt=last[0]).exists():
            yield first, None
            return
        yield first, last[0]
        first, after = last[0] + 1, last[0]


def payout_run_start(
    *,
    now: datetime | None = None,
    sellers: Sequence[int] | None = None,
    started_by: User | None = None,
    trigger: str = PayoutRun.Trigger.SCHEDULE,
    fan_out: bool = True,
    chunk_size: int | None = None,
) -> PayoutRun:
    """Release the due holds, then create the run and its chunks (see the module
    docstring); with ``fan_out`` each chunk is made by its own task once this commits,
    else the caller makes them (``payout_run_chunk_make``). ``sellers`` (ids) limits
    the run to them (a manual run). A run with nothing to pay is finished at once."""
    if fan_out and sellers is not None:
        # A chunk's task knows the run and its number only: it would pay every due
        # seller of its range, not the ones named.
        raise ValueError("A run for named sellers is made inline (fan_out=False).")
    now = now or timezone.now()
    size = chunk_size or int(settings.PAYOUT_RUN_CHUNK_SIZE)
    holds_released = holds_release_due(now=now)
    with transaction.atomic():
        run = PayoutRun.objects.create(
            trigger=trigger, started_by=started_by, holds_released=holds_released
        )
        batch: list[PayoutRunChunk] = []
        total = 0
        for first, last in chunk_ranges(size=size, seller_ids=sellers):
            batch.append(
                PayoutRunChunk(run=run, number=total, first_seller_id=first, last_seller_id=last)
            )
            total += 1
            if len(batch) >= CHUNK_ROWS_BATCH:
                PayoutRunChunk.objects.bulk_create(batch)
                batch = []
        PayoutRunChunk.objects.bulk_create(batch)
        run.chunks_total = total
        fields = ["chunks_total"]
        if total == 0:
            run.finished_at = timezone.now()
            fields.append("finished_at")
            _run_finished(run, sellers)
        run.save(update_fields=fields)
        if fan_out:
            for number in range(total):
                enqueue_on_commit(
                    "payments.tasks.payout_run_chunk_task", run.pk, number, now.isoformat()
                )
    return run


def payout_run_chunk_make(
    *, run_id: int, number: int, now: datetime, sellers: Sequence[int] | None = None
) -> ChunkReport:
    """Make one chunk's payouts in one transaction (see the module docstring); safe to
    run again and from any number of workers: a chunk is made once. ``sellers`` (ids)
    as given to ``payout_run_start``: a manual run, paid whatever their schedule."""
    return retry_on_conflict(partial(_chunk_make, run_id, number, now, sellers))


def _chunk_make(
    run_id: int, number: int, now: datetime, sellers: Sequence[int] | None
) -> ChunkReport:
    with transaction.atomic():
        chunk = (
            PayoutRunChunk.objects.select_for_update(of=("self",))
            .select_related("run")
            .get(run_id=run_id, number=number)
        )
        if chunk.done_at is not None:
            return ChunkReport(done_before=True)
        in_chunk = _with_money(sellers).filter(seller_id__gte=chunk.first_seller_id)
        if chunk.last_seller_id is not None:
            in_chunk = in_chunk.filter(seller_id__lte=chunk.last_seller_id)
        seller_ids = sorted(set(in_chunk.values_list("seller_id", flat=True)))
        sellers_money_lock(seller_ids)
        # Read again under the locks: what a refund, a payout or a freeze changed meanwhile.
        available: dict[SellerCurrency, int] = {}
        for seller_id, currency, balance in in_chunk.filter(seller_id__in=seller_ids).values_list(
            "seller_id", "currency", "balance_minor"
        ):
            assert seller_id is not None
            available[seller_id, currency] = -balance
        plans, skipped = payouts_plan(available=available, now=now, manual=sellers is not None)
        created = _payouts_insert(plans, chunk.run)
        _breakdown_insert([payout.pk for payout in created])
        report = ChunkReport(planned=plans, skipped=skipped)
        report.run_finished = _chunk_done(chunk, created, skipped, sellers)
    return report


def _payouts_insert(plans: list[PlannedPayout], run: PayoutRun) -> list[Payout]:
    """Insert the planned payouts in bulk, skipping those whose (seller, currency,
    period) another run made first; sets ``plan.payout`` on the ones made here."""
    if not plans:
        return []
    Payout.objects.bulk_create(
        [plan.payout_row(run=run, created_by_id=run.started_by_id) for plan in plans],
        ignore_conflicts=True,
        batch_size=500,
    )
    made = {
        (payout.seller_id, payout.currency, payout.period): payout
        for payout in Payout.objects.filter(
            run=run, seller_id__in={plan.seller.pk for plan in plans}
        )
    }
    created = []
    for plan in plans:
        payout = made.get((plan.seller.pk, plan.currency, plan.period))
        if payout is not None:
            payout.seller = plan.seller
            plan.payout = payout
            created.append(payout)
    return created


def _breakdown_insert(payout_ids: list[int]) -> None:
    """Each payout's breakdown, in one statement: the entries of its available account
    not in a payout yet, other than the payout postings themselves."""
    if not payout_ids:
        return
    ids = ", ".join(["%s"] * len(payout_ids))
    kinds = ", ".join(["%s"] * len(PAYOUT_TXN_KINDS))
    sql = f"""
        INSERT INTO {PayoutEntry._meta.db_table} (payout_id, entry_id)
        SELECT p.id, e.id
          FROM {Payout._meta.db_table} p
          JOIN {LedgerAccount._meta.db_table} a
            ON a.seller_id = p.seller_id AND a.currency = p.currency AND a.kind = %s
          JOIN {LedgerEntry._meta.db_table} e ON e.account_id = a.id
         WHERE p.id IN ({ids})
           AND e.transaction_kind NOT IN ({kinds})
           AND NOT EXISTS (
               SELECT 1 FROM {PayoutEntry._meta.db_table} x WHERE x.entry_id = e.id
           )
    """  # noqa: S608 (table names from the models; values are parameters)
    params: list[int | str] = [
        str(Kind.AVAILABLE),
        *payout_ids,
        *[str(kind) for kind in PAYOUT_TXN_KINDS],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _chunk_done(
    chunk: PayoutRunChunk,
    created: list[Payout],
    skipped: list[SkippedSeller],
    sellers: Sequence[int] | None,
) -> bool:
    """Record the chunk done and the run's progress under the run's row lock (taken
    last, held to the commit: short), queue the chunk's sends after every earlier
    chunk's, and finish the run if this was its last chunk. True if it was."""
    now = timezone.now()
    reasons = [str(skip) for skip in skipped]
    chunk.done_at, chunk.payouts_created, chunk.skipped = now, len(created), reasons
    chunk.save(update_fields=["done_at", "payouts_created", "skipped"])
    run = PayoutRun.objects.select_for_update().get(pk=chunk.run_id)
    sends = sorted(
        (p for p in created if p.status == Status.SCHEDULED and p.method == PayoutMethod.PROCESSOR),
        key=lambda payout: payout.pk,
    )
    first_slot = run.sends_scheduled
    run.sends_scheduled += len(sends)
    run.chunks_done += 1
    run.payouts_created += len(created)
    room = max(SKIPPED_KEPT - len(run.skipped), 0)
    run.skipped = [*run.skipped, *reasons[:room]]
    fields = ["sends_scheduled", "chunks_done", "payouts_created", "skipped"]
    finished = run.chunks_done == run.chunks_total
    if finished:
        run.finished_at = now
        fields.append("finished_at")
    run.save(update_fields=fields)
    if sends:
        enqueue_on_commit(
            "payments.tasks.payout_sends_enqueue_task",
            [p.pk for p in sends],
            first_slot,
            now.isoformat(),
        )
    if finished:
        _run_finished(run, sellers)
    return finished


def payout_sends_enqueue(*, payout_ids: list[int], first_slot: int, since: datetime) -> int:
    """Queue one send task per payout of a chunk, the ``first_slot``-th send of its run
    first, each ``send_delay(slot)`` after ``since`` (when the chunk was made): the
    run's sends stay under the processor's limit across chunks. Run by a task of its
    own once the chunk commits, so the chunk's worker does not spend its time
    publishing; should it be lost, the payouts are sent by the sweeper. Returns how many."""
    now = timezone.now()
    for slot, payout_id in enumerate(payout_ids, start=first_slot):
        due = since + timedelta(seconds=send_delay(slot))
        wait = (due - now).total_seconds()
        enqueue("payments.tasks.payout_send_task", payout_id, countdown=wait if wait > 0 else None)
    return len(payout_ids)


def _run_finished(run: PayoutRun, sellers: Sequence[int] | None) -> None:
    """The run's last part: send again the bank payouts that wait for a run (refused
    or failed ones), paced after the run's own sends."""

    bank_payouts_retry_for_run(
        seller_ids=None if sellers is None else list(sellers), first_slot=run.sends_scheduled
    )


def payout_run_inline(
    *,
    now: datetime,
    sellers: Sequence[int] | None = None,
    started_by: User | None = None,
    trigger: str = PayoutRun.Trigger.SCHEDULE,
) -> tuple[PayoutRun, list[ChunkReport]]:
    """A run made here chunk by chunk, each in its own transaction (a manual run, the
    admin's and the API's, tests): the same services as a fanned-out run."""
    run = payout_run_start(
        now=now, sellers=sellers, started_by=started_by, trigger=trigger, fan_out=False
    )
    reports = [
        payout_run_chunk_make(run_id=run.pk, number=number, now=now, sellers=sellers)
        for number in range(run.chunks_total)
    ]
    run.refresh_from_db()
    return run, reports
