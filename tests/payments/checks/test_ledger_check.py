"""``ledger_check`` proves money invariants from the outside: each test builds a
clean state with the services, then plants one violation with raw SQL (bypassing
the services; ledger rows only ever inserted, balanced) and expects a problem
that names it. Runs on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone

from marketplace.models import OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.posting import seller_account
from payments.models import Dispute, LedgerAccount, Payout, PayoutPolicy, Refund
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.processors.local import CARD_DISPUTED, CARD_SUCCEEDS, LocalProcessor
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db

Kind = LedgerAccount.Kind
local = LocalProcessor()


# --- planting with raw SQL ------------------------------------------------------------


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))
        if cursor.description:
            return cursor.fetchall()
    return None


def insert(table, **values):
    """INSERT one row; returns its id."""
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values.values())
    return sql(f"SELECT max(id) FROM {table}")[0][0]


def post_raw(kind, key, reference_id, entries, reference_type="test"):
    """A balanced ledger transaction written with SQL, running balances moved too;
    ``entries``: [(account, amount)]."""
    assert sum(amount for _, amount in entries) == 0
    now = timezone.now()
    txn_id = insert(
        "payments_ledgertransaction",
        kind=kind,
        idempotency_key=key,
        reference_type=reference_type,
        reference_id=str(reference_id),
        description="planted",
        created_at=now,
    )
    for account, amount in entries:
        insert(
            "payments_ledgerentry",
            transaction_id=txn_id,
            account_id=account.pk,
            amount_minor=amount,
            currency=account.currency,
            transaction_kind=kind,
            created_at=now,
        )
        if account.seller_id is None:  # the platform's balance is in its shards
            sql(
                "INSERT INTO payments_ledgerbalanceshard (account_id, shard, balance_minor)"
                " VALUES (%s, 0, %s) ON CONFLICT (account_id, shard) DO UPDATE SET"
                " balance_minor = payments_ledgerbalanceshard.balance_minor"
                " + excluded.balance_minor",
                [account.pk, amount],
            )
        else:
            sql(
                "UPDATE payments_ledgeraccount SET balance_minor = balance_minor + %s"
                " WHERE id = %s",
                [amount, account.pk],
            )
    return txn_id


def problems():
    return ledger_check().problems


def reported(fragment):
    found = problems()
    assert any(fragment in problem for problem in found), found
    return found


# --- states built with the services ---------------------------------------------------


@pytest.fixture
def earning(seller):
    """A seller with 90.00 available: a paid 100.00 order at 10%, hold released."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    seller.order = order
    return seller


@pytest.fixture
def paid_out(run, earning):
    """``earning`` paid out in full (9000) through the local processor."""
    run(run_payouts)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.PAID
    return payout


@pytest.fixture
def scheduled(earning):
    """``earning`` with a scheduled payout of 9000, not sent yet (its task not run)."""
    run_payouts()
    payout = Payout.objects.get()
    assert (payout.status, payout.amount_minor) == (Payout.Status.SCHEDULED, 9000)
    return payout


def pay_with_card(run, customer, seller, card, price=1000):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=price, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=card)
    order.refresh_from_db()
    return order


# --- 9. refunds and lost disputes within the captured total ---------------------------


@pytest.fixture
def books(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 2), (other_seller, 700, 1)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=500))
    return order


def test_refunds_and_lost_disputes_beyond_the_captured_total_are_reported(seller):
    order = paid_order([(seller, 1000, 2)])
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=1500))
    assert ledger_check().ok

    dispute_id = insert(
        "payments_dispute",
        order_id=order.pk,
        processor="local",
        processor_dispute_id="dp_planted",
        amount_minor=1000,
        currency="USD",
        reason="fraudulent",
        status="lost",
        opened_at=timezone.now(),
        closed_at=timezone.now(),
    )
    insert(  # what the dispute held of the line
        "payments_disputeline",
        dispute_id=dispute_id,
        order_line_id=order.lines.get().pk,
        amount_minor=1000,
        seller_amount_minor=900,
        commission_amount_minor=100,
        refunded_seller_minor=0,
        refunded_commission_minor=0,
    )

    reported(
        f"Order #{order.pk}: captured 2000 USD, but succeeded refunds (1500) and lost "
        "disputes (1000) gave back 2500."
    )
    assert Dispute.objects.get(pk=dispute_id).status == Dispute.Status.LOST


# --- 10. no refund while a dispute is open or lost --------------------------------------


def test_a_refund_created_while_a_dispute_is_open_is_reported(run, customer, seller):
    order = pay_with_card(run, customer, seller, CARD_DISPUTED)
    dispute = Dispute.objects.get()
    assert dispute.status == Dispute.Status.OPEN
    assert ledger_check().ok

    refund_id = insert(
        "payments_refund",
        order_id=order.pk,
        amount_minor=500,
        currency="USD",
        status="pending",
        reason="planted",
        processor="",
        processor_refund_id="",
        failure_reason="",
        created_at=dispute.opened_at + timedelta(minutes=5),
    )

    reported(f"Refund #{refund_id} of order #{order.pk} (pending, 500)")
    reported(f"while dispute #{dispute.pk} (open, 1000,")


def test_a_refund_before_the_dispute_or_after_a_won_one_is_fine(run, customer, seller):
    order = pay_with_card(run, customer, seller, CARD_DISPUTED)
    dispute = Dispute.objects.get()
    insert(
        "payments_refund",
        order_id=order.pk,
        amount_minor=500,
        currency="USD",
        status="failed",
        reason="planted: failed refunds are not live",
        processor="",
        processor_refund_id="",
        failure_reason="",
        created_at=dispute.opened_at + timedelta(minutes=5),
    )
    assert ledger_check().ok

    run(local.dispute_close, dispute_id=dispute.processor_dispute_id, won=True)
    sql("UPDATE payments_refund SET status = 'pending'")
    assert ledger_check().ok  # the dispute was won: refunds are allowed again


# --- 11. the local processor's fee is posted -----------------------------------------------


def test_a_local_payment_without_its_fee_posted_is_reported(run, customer, seller):
    order = pay_with_card(run, customer, seller, CARD_SUCCEEDS, price=1000)
    assert ledger_check().ok  # fee 2.9% + 30 = 59 posted as fee:<order id>

    plain = paid_order([(seller, 2000, 1)])  # captured with no fee (another processor)
    assert ledger_check().ok
    attempt_id = insert(
        "payments_paymentattempt",
        order_id=plain.pk,
        number=1,
        processor="local",
        processor_payment_id="pi_planted",
        client_secret="",
        amount_minor=2000,
        currency="USD",
        status="succeeded",
        failure_message="",
        idempotency_key="planted",
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )

    reported(
        f"Order #{plain.pk}: payment attempt #{attempt_id} of 2000 was captured by the local "
        f"processor, which kept a fee of 88; no fee:{plain.pk} transaction was posted."
    )
    assert not any(f"Order #{order.pk}:" in problem for problem in problems())


# --- 12. seller debts ----------------------------------------------------------------------


def test_a_debt_left_by_a_refund_after_the_payout_is_explained(paid_out, earning):
    refund_mark_succeeded(refund=refund_create(order=earning.order, amount_minor=5000))
    assert seller_account(earning, Kind.AVAILABLE, "USD").balance_minor == 4500
    assert ledger_check().ok


def test_a_debt_on_available_that_nothing_explains_is_reported(paid_out, earning):
    pending = seller_account(earning, Kind.PENDING, "USD")
    available = seller_account(earning, Kind.AVAILABLE, "USD")

    post_raw("hold_released", "planted:available", 1, [(available, 300), (pending, -300)])

    reported(
        f"Seller #{earning.pk}: the available account (USD) is in debt by 300, but refunds "
        "and disputes since the last payout explain only 0."
    )


def test_a_debt_beyond_what_the_refund_after_the_payout_took_is_reported(paid_out, earning):
    refund_mark_succeeded(refund=refund_create(order=earning.order, amount_minor=1000))
    pending = seller_account(earning, Kind.PENDING, "USD")
    available = seller_account(earning, Kind.AVAILABLE, "USD")
    assert ledger_check().ok

    post_raw("hold_released", "planted:more", 1, [(available, 50), (pending, -50)])

    reported("the available account (USD) is in debt by 950, but refunds and disputes")


def test_a_pending_account_in_debt_is_reported(earning):
    pending = seller_account(earning, Kind.PENDING, "USD")
    available = seller_account(earning, Kind.AVAILABLE, "USD")

    post_raw("hold_released", "planted:pending", 1, [(pending, 500), (available, -500)])

    reported(f"Seller #{earning.pk}: the pending account (USD) is in debt by 500")


# --- 13. paid out within what was earned and kept --------------------------------------------


def test_paid_out_beyond_what_the_seller_kept_is_reported(paid_out, earning):
    line = earning.order.lines.get()
    dispute_id = insert(
        "payments_dispute",
        order_id=earning.order.pk,
        processor="local",
        processor_dispute_id="dp_planted",
        amount_minor=10000,
        currency="USD",
        reason="fraudulent",
        status="lost",
        opened_at=timezone.now(),
        closed_at=timezone.now(),
    )
    insert(
        "payments_disputeline",
        dispute_id=dispute_id,
        order_line_id=line.pk,
        amount_minor=10000,
        seller_amount_minor=9000,
        commission_amount_minor=1000,
        refunded_seller_minor=0,
        refunded_commission_minor=0,
    )

    reported(
        f"Seller #{earning.pk} (USD): paid out 9000, more than earned and kept 0 "
        "(shares 9000, fees 0, refunds 0, lost disputes 9000, open disputes 0) plus the "
        "debt carried 0."
    )


# --- 14. a payout is covered by its breakdown ------------------------------------------------


def test_a_payout_whose_breakdown_was_lost_is_reported(scheduled, earning):
    assert ledger_check().ok

    sql("DELETE FROM payments_payoutentry WHERE payout_id = %s", [scheduled.pk])

    reported(
        f"Payout #{scheduled.pk} (seller #{earning.pk}, scheduled) of 9000 USD: its "
        "breakdown pays for 0"
    )


def test_a_payout_larger_than_its_breakdown_is_reported(scheduled):
    sql("UPDATE payments_payout SET amount_minor = 9100 WHERE id = %s", [scheduled.pk])

    reported(f"Payout #{scheduled.pk} (seller #{scheduled.seller_id}, scheduled) of 9100 USD")


def test_a_cancelled_payout_that_kept_its_breakdown_is_reported(scheduled):
    sql("UPDATE payments_payout SET status = 'cancelled' WHERE id = %s", [scheduled.pk])

    reported(f"Payout #{scheduled.pk} (seller #{scheduled.seller_id}) is cancelled but still pays")


def test_a_payout_less_its_reserve_is_covered(run, earning):
    PayoutPolicy.objects.create(seller=earning, reserve_bps=1000, reserve_days=90)
    run(run_payouts)
    payout = Payout.objects.get()
    assert (payout.amount_minor, payout.reserve_minor) == (8100, 900)
    assert ledger_check().ok

    sql("UPDATE payments_payout SET reserve_minor = 1000 WHERE id = %s", [payout.pk])

    reported("less the reserve 1000 kept back")


# --- 15. no payout waits to be sent while the seller is frozen -------------------------------


def test_an_open_payout_of_a_frozen_seller_is_reported(scheduled, earning):
    policy_id = insert(
        "payments_payoutpolicy",
        seller_id=earning.pk,
        schedule="daily",
        weekday=0,
        month_day=1,
        minimums="{}",
        approval_thresholds="{}",
        method="processor",
        hold_days=7,
        release_on_delivery=False,
        reserve_bps=0,
        reserve_days=90,
        frozen=False,
        frozen_reason="",
    )
    assert ledger_check().ok

    sql(
        "UPDATE payments_payoutpolicy SET frozen = %s, frozen_reason = 'Fraud review'"
        " WHERE id = %s",
        [True, policy_id],
    )

    reported(
        f"Payout #{scheduled.pk} of 9000 USD to seller #{earning.pk} is scheduled but the "
        "seller's payouts are frozen (Fraud review)."
    )
    sql("UPDATE payments_payout SET status = 'held' WHERE id = %s", [scheduled.pk])
    assert ledger_check().ok  # held while frozen: as it should be


def test_the_platform_default_freeze_applies_to_sellers_without_a_policy(scheduled, earning):
    insert(
        "payments_payoutpolicy",
        schedule="daily",
        weekday=0,
        month_day=1,
        minimums="{}",
        approval_thresholds="{}",
        method="processor",
        hold_days=7,
        release_on_delivery=False,
        reserve_bps=0,
        reserve_days=90,
        frozen=True,
        frozen_reason="Platform audit",
    )

    reported(f"Payout #{scheduled.pk} of 9000 USD to seller #{earning.pk} is scheduled")


# --- 16. each payout sent once, for its amount ------------------------------------------------


def test_a_payout_sent_twice_is_reported(paid_out, earning):
    assert ledger_check().ok
    available = seller_account(earning, Kind.AVAILABLE, "USD")
    in_transit = seller_account(earning, Kind.IN_TRANSIT, "USD")

    post_raw(
        "payout_sent",
        f"payout:{paid_out.pk}:sent-again",
        paid_out.pk,
        [(available, 9000), (in_transit, -9000)],
        reference_type="payout",
    )

    reported(
        f"Transaction payout:{paid_out.pk}:sent-again (payout_sent) of payout #{paid_out.pk} "
        "is not one of its"
    )


def test_a_sent_transaction_without_its_payout_is_reported(paid_out, earning):
    available = seller_account(earning, Kind.AVAILABLE, "USD")
    in_transit = seller_account(earning, Kind.IN_TRANSIT, "USD")

    post_raw(
        "payout_sent",
        "payout:999999:sent",
        999999,
        [(available, 500), (in_transit, -500)],
        reference_type="payout",
    )

    reported("Transaction payout:999999:sent (payout_sent) moves payout 999999, which does not")


def test_a_payout_whose_amount_differs_from_what_was_sent_is_reported(paid_out):
    sql("UPDATE payments_payout SET amount_minor = 8000 WHERE id = %s", [paid_out.pk])

    reported(
        f"Transaction payout:{paid_out.pk}:sent moves 9000 through in transit; "
        f"payout #{paid_out.pk} is for 8000 USD."
    )


def test_a_sent_payout_whose_status_says_otherwise_is_reported(scheduled):
    payout_send(payout=scheduled)
    scheduled.refresh_from_db()
    assert scheduled.status == Payout.Status.IN_TRANSIT
    assert ledger_check().ok

    sql("UPDATE payments_payout SET status = 'scheduled' WHERE id = %s", [scheduled.pk])

    reported(f"Payout #{scheduled.pk} of 9000 to seller #{scheduled.seller_id} is scheduled")


def test_a_consistent_ledger_passes(books, capsys):
    call_command("check_ledger")

    out = capsys.readouterr().out
    assert "1 paid orders" in out
    assert "The ledger is consistent." in out


def test_an_empty_ledger_passes(db, capsys):
    call_command("check_ledger")

    assert "The ledger is consistent." in capsys.readouterr().out


def test_a_running_balance_that_drifted_is_reported(books, seller, capsys):
    # A seller's: the platform's balances are in shards
    # (tests/payments/ledger/test_posting_shards.py).
    pending = LedgerAccount.objects.filter(seller=seller, kind="pending")
    pending.update(balance_minor=F("balance_minor") + 1)

    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_ledger")

    assert "running balance -1466 but its entries sum to -1467" in capsys.readouterr().err


def test_a_refund_marked_succeeded_without_its_posting_is_reported(books, capsys):
    pending = refund_create(order=books, amount_minor=100)
    Refund.objects.filter(pk=pending.pk).update(status=Refund.Status.SUCCEEDED)

    with pytest.raises(CommandError):
        call_command("check_ledger")

    err = capsys.readouterr().err
    assert f"Refund #{pending.pk} succeeded for 100; the ledger refunded nothing." in err
    # Its lines' shares are still in the ledger: the per-line check sees it too.
    assert f"Order #{books.pk}, line #" in err


def test_refund_counters_that_do_not_match_the_refunds_are_reported(books, capsys):
    seller_order = books.seller_orders.first()
    SellerOrder.objects.filter(pk=seller_order.pk).update(refunded_minor=300)

    with pytest.raises(CommandError):
        call_command("check_ledger")

    assert (
        f"Seller order #{seller_order.pk}: refunded 300, its lines say" in capsys.readouterr().err
    )


def test_a_line_whose_counters_drifted_is_reported(books, capsys):
    line = books.lines.first()
    OrderLine.objects.filter(pk=line.pk).update(
        refunded_seller_minor=F("refunded_seller_minor") + 1,
        refunded_commission_minor=F("refunded_commission_minor") - 1,
    )

    with pytest.raises(CommandError):
        call_command("check_ledger")

    assert f"Line #{line.pk}: refund counters" in capsys.readouterr().err
