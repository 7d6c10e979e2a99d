from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Count, Min, Sum
from django.test.utils import override_settings

from accounts.models import Seller, User
from accounts.roles import is_operator
from marketplace.demo import CUSTOMERS, OPERATOR, SELLERS
from marketplace.models import Category, Order, Product, SellerOrder
from payments.checks import ledger_check
from payments.models import (
    Dispute,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    PaymentAttempt,
    Payout,
    PayoutEntry,
    Refund,
    RefundRequest,
    WebhookEvent,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """``seed_demo`` run once for the module (a year of history takes seconds); each
    test runs in a savepoint of this transaction, which is rolled back at the end."""
    out = StringIO()
    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), fast, transaction.atomic():
        call_command("seed_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def counts():
    return (
        User.objects.count(),
        Seller.objects.count(),
        Category.objects.count(),
        Product.objects.count(),
    )


def test_seed_demo_creates_the_demo_marketplace_and_prints_the_logins(seeded):
    assert counts() == (7, 4, 8, 32)
    assert set(Seller.objects.values_list("default_currency", flat=True)) == {"USD", "EUR", "JPY"}
    assert set(Order.objects.values_list("status", flat=True)) == {
        "paid",
        "partially_refunded",
        "refunded",
        "awaiting_payment",
    }
    assert ledger_check().ok, ledger_check().problems
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="payments.tasks.run_payouts_task").count() == 2
    enabled = Seller.objects.filter(payout_status="enabled").exclude(payout_account_id="")
    assert enabled.count() == 3
    kyoto = Seller.objects.get(default_currency="JPY")  # paid by bank transfer instead
    assert kyoto.payout_policy.method == "manual" and kyoto.has_bank_details
    operator = User.objects.get(email=OPERATOR[0])
    assert is_operator(operator) and not operator.is_superuser
    for email, password, *_ in [OPERATOR, *CUSTOMERS, *SELLERS]:
        assert f"{email}" in seeded and password in seeded
        assert User.objects.get(email=email).check_password(password)
    assert Product.objects.filter(is_featured=True).exists()
    # Prices were typed as decimals and stored exactly in minor units.
    assert Product.objects.get(title="The Lighthouse Keeper").price_minor == 1899
    assert Product.objects.get(title="Matcha Bowl").price_minor == 6500
    # After a year of sales the catalog has its stock again (the sellers restocked).
    assert Product.objects.get(title="The Quiet Orbit").stock == 3
    assert Product.objects.get(title="Letterpress Bookmark Set").stock == 0


def test_seed_demo_writes_a_year_of_orders_paid_through_the_local_processor(seeded):
    orders = Order.objects.all()
    assert 120 <= orders.count() <= 300
    first, last = orders.order_by("created_at")[0], orders.order_by("-created_at")[0]
    assert (last.created_at - first.created_at).days > 300
    months = {(o.year, o.month) for o in orders.dates("created_at", "month")}
    assert len(months) >= 12
    two_sellers = orders.annotate(sellers=Count("seller_orders")).filter(sellers__gt=1)
    assert two_sellers.count() >= 3
    paid = orders.exclude(status="awaiting_payment")
    # Every paid order was paid by card at the local processor, its event processed.
    succeeded = PaymentAttempt.objects.filter(processor="local", status="succeeded")
    assert succeeded.count() == paid.count()
    assert set(PaymentAttempt.objects.values_list("status", flat=True)) >= {"succeeded", "canceled"}
    assert not WebhookEvent.objects.exclude(status__in=["processed", "ignored"]).exists()
    assert SellerOrder.objects.filter(status="delivered").count() > paid.count() // 2


def test_the_ledger_tells_the_same_dates_as_the_orders_refunds_and_payouts(seeded):
    report = ledger_check()
    assert report.ok, report.problems
    # Each transaction sums to zero; no seller has money left in transit.
    unbalanced = LedgerTransaction.objects.annotate(total=Sum("entries__amount_minor")).exclude(
        total=0
    )
    assert not unbalanced.exists()
    in_transit = LedgerAccount.objects.filter(kind="in_transit").exclude(balance_minor=0)
    assert not in_transit.exists()
    posted = dict(
        LedgerTransaction.objects.filter(kind="payment_captured").values_list(
            "reference_id", "created_at"
        )
    )
    for pk, paid_at in Order.objects.exclude(paid_at=None).values_list("pk", "paid_at"):
        assert posted[str(pk)] == paid_at
    refunded = dict(
        LedgerTransaction.objects.filter(kind="refund").values_list("reference_id", "created_at")
    )
    for pk, completed_at in Refund.objects.values_list("pk", "completed_at"):
        assert refunded[str(pk)] == completed_at
    for payout in Payout.objects.filter(status="paid"):
        settled = LedgerTransaction.objects.filter(
            kind="payout_paid", reference_type="payout", reference_id=str(payout.pk)
        ).latest("created_at")
        assert settled.created_at == payout.paid_at
    oldest = LedgerEntry.objects.aggregate(at=Min("transaction__created_at"))["at"]
    assert (Order.objects.latest("created_at").created_at - oldest).days > 300


def test_sellers_were_paid_monthly_and_one_payout_failed(seeded):
    paid = Payout.objects.filter(status="paid")
    assert paid.filter(method="processor").count() >= 24
    assert paid.filter(method="manual", seller__slug="kyoto-craft-house").count() >= 10
    failed = Payout.objects.get(status="failed")
    assert failed.seller.slug == "harbor-ceramics"
    assert "cannot receive transfers" in failed.failure_reason
    # The operator paid it again the next day.
    retried = Payout.objects.get(period=f"retry-{failed.pk}")
    assert retried.status == "paid" and retried.amount_minor == failed.amount_minor


def test_refunds_full_partial_and_one_after_the_payout(seeded):
    refunds = Refund.objects.all()
    assert refunds.count() >= 8
    assert set(refunds.values_list("status", flat=True)) == {"succeeded"}
    assert Order.objects.filter(status="refunded").exists()
    assert Order.objects.filter(status="partially_refunded").exists()
    assert any(r.amount_minor < r.lines.first().order_line.gross_minor for r in refunds)
    after_payout = [
        refund
        for refund in refunds.prefetch_related("lines")
        if PayoutEntry.objects.filter(
            entry__order_line__in=[line.order_line_id for line in refund.lines.all()],
            payout__status="paid",
            payout__paid_at__lt=refund.created_at,
        ).exists()
    ]
    assert after_payout
    # Taken from the seller's available balance (a debt the next payout nets).
    assert LedgerEntry.objects.filter(
        transaction__kind="refund", account__kind="available", amount_minor__gt=0
    ).exists()


def test_a_dispute_and_refund_requests_wait_for_the_operator(seeded):
    dispute = Dispute.objects.get()
    assert dispute.status in ("open", "lost")
    assert dispute.order.payment_attempts.filter(status="succeeded").exists()
    statuses = list(RefundRequest.objects.values_list("status", flat=True))
    assert statuses.count("requested") == 1
    assert {"approved", "declined"} <= set(statuses)


def test_seed_demo_twice_changes_nothing(seeded, capsys):
    before = counts(), Order.objects.count(), LedgerEntry.objects.count()
    changed = Product.objects.get(title="Matcha Bowl")
    changed.stock = 1
    changed.save()

    call_command("seed_demo")

    assert (counts(), Order.objects.count(), LedgerEntry.objects.count()) == before
    assert Product.objects.get(title="Matcha Bowl").stock == 1
    assert "Demo data: 0 rows created." in capsys.readouterr().out


def test_the_demo_worker_runs_queued_work_but_not_the_history_s_emails(monkeypatch):
    """``in_process_worker`` runs what services queued by task name, as a worker would,
    except the emails about the demo's history (tasks named ``*_notify_task``)."""
    from marketplace.demo import in_process_worker
    from marketplace.kernel import task_queue

    ran = []
    monkeypatch.setattr(
        task_queue, "_publish", lambda task, args, countdown=None: ran.append(task.name)
    )
    with transaction.atomic(), in_process_worker() as work:
        task_queue.enqueue_on_commit("payments.tasks.order_paid_notify_task", 1)
        task_queue.enqueue_on_commit("payments.tasks.webhook_event_process_task", 2)
        work()

    assert ran == ["payments.tasks.webhook_event_process_task"]
