"""What one payout send costs the database, end to end, with the local processor.

The send task (``payout_send_task``) and every task it queues after commit (the local
processor's event delivery, the webhook event's processing, the two emails) run as
a worker would run them. The seller's ``in_transit`` account and the platform's
``connected`` account exist already, as they do for every payout but a seller's
first (which makes its ``in_transit`` account: one INSERT more).

64 statements (issue 18; before: 78). The transfer is claimed in a transaction of its
own, after the one that marks the payout sent, so that a freeze committed in between
stops it (three statements more than claiming it in the first). ``*`` marks the
checks made under the payout's row lock before money moves; ``(A)`` the ledger's own
statements.

== ========================================= ===========================================
#  statement                                  what for
== ========================================= ===========================================
   **send task, transaction 1**               mark it sent
1  SELECT payout FOR NO KEY UPDATE            the payout's row lock (status, amount) *
2  SELECT seller FOR NO KEY UPDATE            the seller's money lock (payout_guard)
3  SELECT payout policies (own, default)      frozen? one read for both *
4  SELECT available balance                   payable now? (payable_now) *
5  SELECT SUM of open claims                  payable now? *
6  SELECT ledger accounts                     available, in_transit of the seller
7  INSERT ledger transaction ON CONFLICT      ``payout:<id>:sent``, once (A)
8  INSERT ledger entries                      available +p, in_transit -p (A)
9  SELECT ledger accounts FOR UPDATE          their row locks, ids ascending (A)
10 UPDATE ledger accounts                     running balances (A)
11 UPDATE payout                              sending, sent_at, processor
   **send task, transaction 2**               claim the transfer attempt, on its own
12 SELECT payout FOR NO KEY UPDATE            the row lock *
13 SELECT payout policies                     frozen? (sees a freeze committed since) *
14 SELECT payout steps                        an attempt in flight? its number *
15 INSERT payout step                         transfer attempt 1, its idempotency key
16 UPDATE payout                              lease, attempts_since
   **local processor**
17 SELECT local account EXISTS                the destination can take transfers
18 INSERT local transfer                      unique idempotency key
   **send task, transaction 3**               record the transfer, claim the bank payout
19 SELECT payout FOR NO KEY UPDATE            the row lock *
20 UPDATE payout step                         succeeded, the transfer's id
21 SELECT seller FOR NO KEY UPDATE            the money lock (payout_transferred_locked)
22 SELECT ledger accounts                     connected, processor (platform)
23 INSERT ledger transaction ON CONFLICT      ``payout:<id>:transferred``, once (A)
24 INSERT ledger entries                      connected +p, processor -p (A)
25 INSERT balance shards ON CONFLICT          platform balances, no hot row (A)
26 UPDATE payout                              transferred, transfer id, bank payout due
27 SELECT payout policies                     frozen? *
28 SELECT payout steps                        an attempt in flight? its number *
29 SELECT clawback EXISTS                     none in flight (its amount is unknown) *
30 INSERT payout step                         bank payout attempt 1, its key
31 UPDATE payout                              lease, attempts_since
   **local processor**
32 SELECT made? and account balance           one statement: key replayed? enough held?
33 INSERT local payout                        unique idempotency key
34 INSERT local event                         ``payout.paid``, delivered after commit
   **send task, transaction 4**               record the bank payout (_bank_sent)
35 SELECT payout FOR NO KEY UPDATE            the row lock *
36 SELECT payout step FOR UPDATE              its status now (an event may be first) *
37 UPDATE payout step                         succeeded, payout id, status (one UPDATE)
38 UPDATE payout                              in transit, ids, arrival, bank (one UPDATE)
39 INSERT events                              ``payout.sent`` (platform, seller rows)
40 SELECT webhook endpoints                   who listens (none here)
   **local_event_deliver**
41 SELECT local event
42 INSERT webhook event                       stored once (unique processor, event id)
   **payout_notify_task "sent"**
43 INSERT sent notification                   the email's key, once
44 SELECT payout, seller, user                the email's content and address
   **webhook_event_process_task**
45 SELECT webhook event FOR UPDATE            processed once
46 SELECT payout step (with payout)           which attempt the event is about
47 SELECT payout FOR NO KEY UPDATE            the row lock *
48 SELECT seller FOR NO KEY UPDATE            the money lock
49 SELECT payout step FOR UPDATE              its status now *
50 SELECT ledger transactions                 transferred? paid before attempts? (one)
51 SELECT latest bank step                    is the event about the current attempt?
52 SELECT ledger accounts                     in_transit (seller), connected
53 INSERT ledger transaction ON CONFLICT      ``payout:<id>:bank-1:paid``, once (A)
54 INSERT ledger entries                      (A)
55 SELECT ledger accounts FOR UPDATE          the seller's in_transit (A)
56 UPDATE ledger accounts                     its running balance (A)
57 INSERT balance shards ON CONFLICT          connected (platform) (A)
58 UPDATE payout step                         paid
59 UPDATE payout                              paid, paid_at
60 INSERT events                              ``payout.paid``
61 SELECT webhook endpoints                   who listens
62 UPDATE webhook event                       processed
   **payout_notify_task "paid"**
63 INSERT sent notification                   the email's key, once
64 SELECT payout, seller, user                the email
== ========================================= ===========================================

Transactions (``SAVEPOINT`` here, as the test runs in one): the send task's four,
the two processor inserts (autocommit in a worker: no savepoint there), the webhook
event's receipt, its processing and the handler's savepoint inside it (a failure is
kept on the event), and one per email: 11. Before: 15 (a claim had a transaction of
its own, ``payout_transferred`` and the announcement a savepoint each).
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments.checks import ledger_check
from payments.ledger.posting import ledger_account
from payments.models import LedgerTransaction, LocalPayout, LocalTransfer, Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.tasks import payout_send_task
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db

SEND_STATEMENTS = 64
SEND_TRANSACTIONS = 11
SEND_TASK_STATEMENTS = 40  # statements 1 to 40 of the table


def _scheduled(seller, *, paid_before: bool) -> Payout:
    """A scheduled payout of 90.00; for a seller paid before, their accounts exist."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    ledger_account(kind="connected", currency="USD")
    if paid_before:
        ledger_account(kind="in_transit", currency="USD", seller=seller)
    payout = run_payouts(sellers=[seller]).created[0]  # its send task is not run here
    assert payout.status == Payout.Status.SCHEDULED
    return payout


@pytest.fixture
def scheduled(seller):
    return _scheduled(seller, paid_before=True)


def _statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not _is_savepoint(q["sql"])]


def _is_savepoint(sql: str) -> bool:
    return sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))


def _shape(statements: list[str]) -> str:
    """One line per statement, its verb and first table: what to compare with the table."""
    lines = []
    for number, sql in enumerate(statements, start=1):
        table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql)
        lines.append(f"{number:2} {sql.split()[0]} {table.group(1) if table else ''}")
    return "\n".join(lines)


def test_one_local_processor_send_end_to_end_is_64_statements(run, scheduled, mailoutbox):
    with CaptureQueriesContext(connection) as captured:
        run(payout_send_task.apply, args=[scheduled.pk])

    statements = _statements(captured)
    assert len(statements) == SEND_STATEMENTS, _shape(statements)
    savepoints = [q for q in captured.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == SEND_TRANSACTIONS
    # And every recorded step of it is there: the money moved once, each way.
    payout = Payout.objects.get(pk=scheduled.pk)
    assert payout.status == Payout.Status.PAID
    assert [(step.kind, step.attempt, step.outcome) for step in payout.steps.order_by("pk")] == [
        ("transfer", 1, "succeeded"),
        ("bank_payout", 1, "succeeded"),
    ]
    assert sorted(
        LedgerTransaction.objects.filter(reference_type="payout").values_list(
            "idempotency_key", flat=True
        )
    ) == [
        f"payout:{payout.pk}:bank-1:paid",
        f"payout:{payout.pk}:sent",
        f"payout:{payout.pk}:transferred",
    ]
    assert (LocalTransfer.objects.count(), LocalPayout.objects.count()) == (1, 1)
    assert len(mailoutbox) == 2  # sent, then paid
    assert ledger_check().ok


def test_the_send_task_alone_is_40_statements_in_four_transactions(scheduled):
    with CaptureQueriesContext(connection) as captured:
        payout_send_task.apply(args=[scheduled.pk])

    statements = _statements(captured)
    assert len(statements) == SEND_TASK_STATEMENTS, _shape(statements)
    savepoints = [q for q in captured.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 4 + 2  # its transactions, and the processor's two inserts
    assert Payout.objects.get(pk=scheduled.pk).status == Payout.Status.IN_TRANSIT


def test_a_send_delivered_again_after_it_is_paid_is_one_statement(run, scheduled):
    run(payout_send_task.apply, args=[scheduled.pk])

    with CaptureQueriesContext(connection) as captured:
        run(payout_send_task.apply, args=[scheduled.pk])

    assert len(_statements(captured)) == 1  # the payout read under its lock: paid, done
    assert LocalTransfer.objects.count() == 1 and LocalPayout.objects.count() == 1


def test_a_sellers_first_send_makes_their_in_transit_account_with_one_insert_more(seller):
    payout = _scheduled(seller, paid_before=False)

    with CaptureQueriesContext(connection) as captured:
        payout_send_task.apply(args=[payout.pk])

    statements = _statements(captured)
    assert len(statements) == SEND_TASK_STATEMENTS + 1, _shape(statements)
    assert seller.ledger_accounts.filter(kind="in_transit").count() == 1
