"""Regression tests for the sequences that lost or duplicated money (issue "Money
safety"), each proven from the outside: what the customer paid and got back, what
each seller is owed and was paid, what the processor was asked to move.

Amounts are minor units; the commission is 10 % unless a test says otherwise.
Every test here failed on the code before the fix it names.
"""

import pytest
from django.core import mail
from django.db.models import Sum
from django.utils import timezone

from marketplace.kernel.errors import InvalidState
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.disputes import dispute_closed, dispute_opened
from payments.collection.refund_requests import refund_request_approve, refund_request_create
from payments.collection.refunds import (
    refund_create,
    refund_mark_failed,
    refund_mark_succeeded,
    refund_submit,
    refund_sync,
)
from payments.models import (
    AuditRecord,
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LocalRefund,
    LocalTransfer,
    PaymentAttempt,
    Payout,
    PayoutPolicy,
    Refund,
    RefundRequest,
)
from payments.payouts.controls import payout_approve, payout_hold, payout_mark_paid, payout_release
from payments.payouts.freezes import payout_policy_save
from payments.payouts.guard import PayoutStopped
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send, payouts_sweep
from payments.processors.base import InvalidProcessorRequest, TemporaryProcessorError
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from payments.reporting.notifications import payout_notify
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import enable_payouts, paid_order, pay_again_from_a_stale_tab, pay_by_card

pytestmark = pytest.mark.django_db
local = LocalProcessor()


@pytest.fixture(autouse=True)
def ten_percent():
    CommissionRuleFactory(percentage_bps=1000)


def owed(seller, kind, currency="USD"):
    """What the platform owes the seller on one account (positive: owed to them)."""
    account = LedgerAccount.objects.filter(seller=seller, kind=kind, currency=currency).first()
    return -account.balance_minor if account else 0


def platform(kind, currency="USD"):
    accounts = LedgerAccount.objects.filter(seller=None, kind=kind, currency=currency)
    account = accounts.with_balance().first()
    return account.balance if account else 0


def paid_out(seller):
    """What left the seller's available balance for their bank: sent, less failed."""
    return (
        LedgerEntry.objects.filter(
            account__seller=seller,
            account__kind="available",
            transaction_kind__in=("payout_sent", "payout_failed"),
        ).aggregate(total=Sum("amount_minor"))["total"]
        or 0
    )


def policy(seller, **fields):
    return payout_policy_save(policy=PayoutPolicy(seller=seller, **fields), reason="test")


@pytest.fixture
def sale(seller):
    """A 100.00 sale, hold released: the seller has 90.00 available."""
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    return order


def one_sale(customer, seller):
    """An order awaiting payment: one 100.00 product of ``seller``."""
    product = ProductFactory(seller=seller, price_minor=10000, stock=1)
    return place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])


def refund_in_full(order):
    refund = refund_create(order=order)
    refund_mark_succeeded(refund=refund)
    return refund


# --- 1. Payouts are re-checked before money leaves -------------------------------------


def test_a_payout_awaiting_approval_is_cancelled_when_its_sale_was_refunded(sale, seller, operator):
    policy(seller, approval_thresholds={"USD": 5000})
    payout = run_payouts(sellers=[seller]).created[0]
    assert payout.status == Payout.Status.AWAITING_APPROVAL
    refund_in_full(sale)

    with pytest.raises(PayoutStopped, match="No longer covered"):
        payout_approve(payout=payout, by=operator)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert not payout.breakdown.exists()
    assert AuditRecord.objects.filter(payout=payout, action="cancel", actor=None).exists()
    assert paid_out(seller) == 0 and owed(seller, "available") == 0
    assert ledger_check().ok


def test_a_held_payout_is_cancelled_on_release_when_its_sale_was_refunded(sale, seller, operator):
    payout = run_payouts(sellers=[seller]).created[0]
    payout_hold(payout=payout, by=operator, reason="checking")
    refund_in_full(sale)

    with pytest.raises(PayoutStopped):
        payout_release(payout=payout, by=operator, reason="checked")

    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert paid_out(seller) == 0 and owed(seller, "available") == 0
    assert ledger_check().ok


def test_a_manual_payout_cannot_be_marked_paid_after_its_sale_was_refunded(sale, seller, operator):
    seller.bank_account_holder, seller.bank_account_number = "Acme Ltd", "GB33BUKB20201555555555"
    seller.save()
    policy(seller, method=PayoutPolicy.Method.MANUAL)
    payout = run_payouts(sellers=[seller]).created[0]
    refund_in_full(sale)

    with pytest.raises(PayoutStopped):
        payout_mark_paid(payout=payout, by=operator, bank_reference="TRX-1")

    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert platform("bank") == 0 and paid_out(seller) == 0
    assert ledger_check().ok


def test_a_scheduled_payout_is_not_sent_after_its_sale_was_refunded(sale, seller):
    payout = run_payouts(sellers=[seller]).created[0]
    refund_in_full(sale)

    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert not LocalTransfer.objects.exists()
    assert paid_out(seller) == 0
    assert ledger_check().ok


def test_a_partly_refunded_sale_leaves_the_rest_for_the_next_run(sale, seller):
    payout = run_payouts(sellers=[seller]).created[0]
    refund_mark_succeeded(refund=refund_create(order=sale, amount_minor=5000))

    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.CANCELLED
    assert owed(seller, "available") == 4500  # paid by the next run, not lost
    assert ledger_check().ok


# --- 2. Freezing a seller stops payouts already created ---------------------------------


def test_freezing_a_seller_holds_their_open_payouts_at_once(sale, seller):
    payout = run_payouts(sellers=[seller]).created[0]
    assert payout.status == Payout.Status.SCHEDULED

    policy(seller, frozen=True, frozen_reason="KYC review")

    payout.refresh_from_db()
    assert payout.status == Payout.Status.HELD
    assert "KYC review" in payout.audit_records.get(action="hold").reason
    payout_send(payout=payout)  # the task queued before the freeze
    assert payouts_sweep(older_than_minutes=-1) == 0
    payout.refresh_from_db()
    assert payout.status == Payout.Status.HELD
    assert not LocalTransfer.objects.exists()
    assert ledger_check().ok


def test_an_approval_after_a_freeze_holds_the_payout(sale, seller, operator):
    policy(seller, approval_thresholds={"USD": 5000})
    payout = run_payouts(sellers=[seller]).created[0]
    # Frozen in the instant after the freeze looked for open payouts.
    PayoutPolicy.objects.filter(seller=seller).update(frozen=True, frozen_reason="fraud check")

    with pytest.raises(PayoutStopped, match="fraud check"):
        payout_approve(payout=payout, by=operator)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.HELD
    assert payout.approved_by == operator
    with pytest.raises(PayoutStopped, match="stays held"):
        payout_release(payout=payout, by=operator, reason="try")
    assert not LocalTransfer.objects.exists()


def test_the_sweeper_does_not_send_a_frozen_sellers_payout(sale, seller, monkeypatch):
    payout = run_payouts(sellers=[seller]).created[0]

    def timeout(*args, **kwargs):
        raise TemporaryProcessorError("timed out")

    with monkeypatch.context() as patch:
        patch.setattr(LocalProcessor, "transfer_create", timeout)
        payout_send(payout=payout)
    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING and payout.next_attempt_at
    policy(seller, frozen=True, frozen_reason="KYC review")
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())  # retry due

    payouts_sweep(older_than_minutes=-1)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.SENDING
    assert "frozen" in payout.failure_reason
    assert not LocalTransfer.objects.exists()


# --- 3. A disputed payment takes no refund ----------------------------------------------


@pytest.fixture
def disputed(run, customer, seller):
    """A 100.00 order paid with the card that is disputed a moment later."""
    return pay_by_card(run, one_sale(customer, seller), CARD_DISPUTED)


def test_a_refund_of_an_open_dispute_is_refused(disputed):
    with pytest.raises(InvalidState, match="disputed"):
        refund_create(order=disputed)
    assert not Refund.objects.exists()


def test_a_refund_after_a_lost_dispute_is_refused(run, disputed, seller):
    dispute = Dispute.objects.get()
    run(local.dispute_close, dispute_id=dispute.processor_dispute_id, won=False)

    with pytest.raises(InvalidState, match="disputed"):
        refund_create(order=disputed)

    # The customer paid 10000 and got it back once, through the dispute.
    assert not Refund.objects.exists()
    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert ledger_check().ok


def test_a_refund_request_on_a_disputed_payment_is_refused(run, customer, seller):
    order = pay_by_card(run, one_sale(customer, seller))
    attempt = order.payment_attempts.get(status="succeeded")
    request = refund_request_create(
        customer=customer, order_line=order.lines.get(), reason="Broken"
    )
    dispute_opened(
        processor_name="local",
        processor_dispute_id="dp_1",
        payment_id=attempt.processor_payment_id,
        amount_minor=10000,
    )

    with pytest.raises(InvalidState, match="disputed"):
        refund_request_approve(request=request, by=seller.user)

    request.refresh_from_db()
    assert request.status == RefundRequest.Status.REQUESTED
    assert not Refund.objects.exists()


def test_the_local_processor_refuses_a_refund_of_a_disputed_charge(disputed):
    attempt = disputed.payment_attempts.get(status="succeeded")
    with pytest.raises(InvalidProcessorRequest) as refused:
        local.refund_create(
            payment_id=attempt.processor_payment_id,
            amount_minor=100,
            metadata={},
            idempotency_key="r1",
        )
    assert refused.value.code == "charge_disputed"


# --- 4. A dispute books the full amount whatever refunds are pending --------------------


@pytest.fixture
def paid_by_card(run, customer, seller):
    return pay_by_card(run, one_sale(customer, seller))


def open_dispute(order, amount=10000, dispute_id="dp_1"):
    attempt = order.payment_attempts.get(status="succeeded")
    return dispute_opened(
        processor_name="local",
        processor_dispute_id=dispute_id,
        payment_id=attempt.processor_payment_id,
        amount_minor=amount,
    )


def test_a_dispute_next_to_a_pending_refund_books_the_full_amount(paid_by_card, seller):
    pending = refund_create(order=paid_by_card, amount_minor=4000)

    dispute = open_dispute(paid_by_card)

    assert dispute.lines.aggregate(total=Sum("amount_minor"))["total"] == 10000
    assert owed(seller, "disputed") == 9000 and owed(seller, "pending") == 0
    # The refund then fails: the dispute still holds everything, and losing it
    # leaves the seller nothing of a sale charged back in full.
    refund_mark_failed(refund=pending)
    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=False)
    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert ledger_check().ok


def refund_resolved_against_a_dispute(order):
    """A 40.00 refund pending when a 100.00 dispute opens, then succeeding."""
    pending = refund_create(order=order, amount_minor=4000)
    open_dispute(order)
    refund_mark_succeeded(refund=pending)
    return pending


def test_a_pending_refund_that_succeeds_resolves_against_the_dispute(paid_by_card, seller):
    refund_resolved_against_a_dispute(paid_by_card)

    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=False)

    # The seller loses their 9000 once; the customer was repaid 4000 twice, which
    # the platform bears.
    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert platform("losses") == 4000
    assert platform("commission") == 0
    assert ledger_check().ok


def test_a_pending_refund_that_succeeds_before_a_won_dispute_charges_the_seller_once(
    paid_by_card, seller
):
    refund_resolved_against_a_dispute(paid_by_card)

    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=True)

    assert owed(seller, "pending") == 9000 - 3600
    assert owed(seller, "disputed") == 0 and platform("losses") == 0
    assert ledger_check().ok


def test_a_pending_refund_that_succeeds_after_its_dispute_was_lost_resolves_against_it(
    paid_by_card, seller
):
    """Found by the state machine: a 40.00 refund sent before a 100.00 dispute opened, whose
    success arrives only after the dispute was lost. The customer paid 10000 and got back
    14000; the seller loses their 9000 once, the platform its 1000 commission once and the
    4000 repaid twice, exactly as when the success arrives while the dispute is open. The
    code before the fix gave the commission's 400 back a second time (commission at -400,
    losses at 3600) and left the dispute's record saying the seller lost the whole hold
    on top of the refund, so check_ledger expected the seller to be charged twice."""
    pending = refund_create(order=paid_by_card, amount_minor=4000)
    open_dispute(paid_by_card)
    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=False)

    refund_mark_succeeded(refund=pending)
    refund_mark_succeeded(refund=pending)  # the event again changes nothing

    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert platform("losses") == 4000
    assert platform("commission") == 0
    # The processor account: paid 10000, less the dispute's 10000 and the refund's 4000.
    assert platform("processor") + platform("processor_fees") == 10000 - 10000 - 4000
    hold = DisputeLine.objects.get()
    assert (hold.refunded_seller_minor, hold.refunded_commission_minor) == (3600, 400)
    assert ledger_check().ok

    # The customer's bank sends the refund back: the platform's double repayment is undone
    # and the lost dispute keeps what it took.
    refund_mark_failed(refund=pending)

    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert platform("losses") == 0 and platform("commission") == 0
    hold.refresh_from_db()
    assert (hold.refunded_seller_minor, hold.refunded_commission_minor) == (0, 0)
    assert ledger_check().ok


# --- 5 and 9. A duplicate payment is its own money ---------------------------------------


@pytest.fixture
def duplicate(run, paid_by_card):
    """A second payment of the paid order (a stale tab), refunded when it arrives."""
    attempt = pay_again_from_a_stale_tab(run, paid_by_card)
    assert attempt.status == PaymentAttempt.Status.CANCELED
    return attempt


def test_a_duplicate_payments_fee_is_booked(duplicate):
    fee = LedgerTransaction.objects.get(idempotency_key=f"fee:attempt:{duplicate.pk}")
    assert fee.entries.get(account__kind="processor_fees").amount_minor == 320  # 2.9 % + 30
    assert LocalRefund.objects.get().amount_minor == 10000
    assert ledger_check().ok


def test_a_dispute_on_a_refunded_duplicate_never_touches_the_seller(duplicate, seller):
    before = {kind: owed(seller, kind) for kind in ("pending", "available", "disputed")}

    dispute = dispute_opened(
        processor_name="local",
        processor_dispute_id="dp_dup",
        payment_id=duplicate.processor_payment_id,
        amount_minor=10000,
    )
    dispute_closed(processor_name="local", processor_dispute_id="dp_dup", won=False)

    assert dispute.payment_attempt == duplicate and not dispute.lines.exists()
    assert {kind: owed(seller, kind) for kind in before} == before
    assert platform("losses") == 10000
    # The order's own payment can still be refunded: its dispute is not the order's.
    refund_create(order=duplicate.order, amount_minor=100)
    assert ledger_check().ok


# --- 10. A refund reported failed after it succeeded ----------------------------------------


def test_a_refund_that_fails_after_success_is_reversed(run, paid_by_card, seller):
    refund = run(refund_submit, refund=refund_create(order=paid_by_card, amount_minor=10000))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED and owed(seller, "pending") == 0

    refund_sync(
        processor_name="local",
        processor_refund_id=refund.processor_refund_id,
        data={"status": "failed"},
    )
    refund_sync(  # the event again changes nothing
        processor_name="local",
        processor_refund_id=refund.processor_refund_id,
        data={"status": "failed"},
    )

    refund.refresh_from_db()
    paid_by_card.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert owed(seller, "pending") == 9000
    assert paid_by_card.status == "paid" and paid_by_card.refunded_minor == 0
    assert LedgerTransaction.objects.filter(kind="refund_reversed").count() == 1
    assert ledger_check().ok
    # The amount can be refunded again.
    assert refund_create(order=paid_by_card).amount_minor == 10000


# --- 11. A fee above the seller's share is the platform's -----------------------------


def test_a_fee_above_the_share_is_borne_by_the_platform(settings, seller):
    settings.PAYMENTS_PROCESSOR_FEE_PAYER = "sellers"
    CommissionRuleFactory(seller=seller, scope="seller", percentage_bps=9900)

    order = paid_order([(seller, 1000, 1)], fee=59)

    line = order.lines.get()
    assert line.seller_share_minor == 10
    assert owed(seller, "pending") == 0  # not -49
    assert platform("processor_fees") == 49
    assert ledger_check().ok


# --- Emails are sent once per event -----------------------------------------------------


def test_a_payout_email_delivered_twice_is_sent_once(sale, seller):
    payout = run_payouts(sellers=[seller]).created[0]  # its tasks are not run here

    sent = [payout_notify(payout_id=payout.pk, event="sent") for _ in range(2)]

    assert sent == [1, 0]
    assert len(mail.outbox) == 1


def test_a_receipt_delivered_twice_is_sent_once(paid_by_card):
    from payments.reporting.notifications import order_paid_notify

    mail.outbox.clear()
    order_paid_notify(order_id=paid_by_card.pk)
    assert len(mail.outbox) == 0  # sent once already when the payment was recorded


def test_refund_of_the_customer_paid_and_got_back_once(run, paid_by_card, seller):
    """The whole story from outside: paid 10000, refunded 10000, seller owed nothing."""
    run(refund_submit, refund=refund_create(order=paid_by_card))
    customer_got_back = LocalRefund.objects.filter(status="succeeded").aggregate(
        total=Sum("amount_minor")
    )["total"]
    assert customer_got_back == 10000
    assert owed(seller, "pending") + owed(seller, "available") == 0


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_refund_resolved_against_a_dispute_then_reversed_goes_back_to_the_dispute(
    paid_by_card, seller, outcome
):
    """Found by the state machine: the reversal left 36.00 in the seller's disputed account
    for good. The customer got back only what the dispute decides."""
    pending = refund_resolved_against_a_dispute(paid_by_card)

    refund_mark_failed(refund=pending)  # the refund came back
    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=outcome == "won")

    assert owed(seller, "disputed") == 0
    kept = owed(seller, "pending") + owed(seller, "available")
    assert kept == (9000 if outcome == "won" else 0)
    assert platform("losses") == 0
    assert -platform("commission") == (1000 if outcome == "won" else 0)
    assert ledger_check().ok


def test_a_refund_reversed_after_its_dispute_was_lost_undoes_the_platforms_loss(
    paid_by_card, seller
):
    pending = refund_resolved_against_a_dispute(paid_by_card)
    dispute_closed(processor_name="local", processor_dispute_id="dp_1", won=False)
    assert platform("losses") == 4000

    refund_mark_failed(refund=pending)

    assert platform("losses") == 0 and platform("commission") == 0
    assert owed(seller, "pending") + owed(seller, "available") + owed(seller, "disputed") == 0
    assert ledger_check().ok
