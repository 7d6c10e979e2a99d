"""A stateful, model-based test of the money services.

A Hypothesis ``RuleBasedStateMachine`` drives the real services (orders paid through
the local processor, fees, refunds, disputes, duplicate payments, hold releases,
freezes, payout runs, approvals, sends, the processor's answers, manual payouts) and
keeps a plain reference model, written here independently, of where every minor unit
should be. After every step the ledger's balances must equal the model's exactly, the
model's own sums must hold, and ``payments.checks.ledger_check()`` must be clean.

The model takes each line's commission and seller share from what ``place_order``
computed (commission rules are not re-implemented), but re-derives every split of a
refund or a dispute with its own largest-remainder allocation, and follows the rules
of the service docstrings (payments/collection/refunds.py, payments/collection/disputes.py,
payments/payouts/guard.py, payments/payouts/planning.py, payments/payouts/sending.py,
payments/payouts/controls.py) for who gets what. Expected refusals
(``ApplicationError`` and its subclasses, ``PayoutStopped``) are predicted by the
model and asserted; any other exception fails the test.

Each example runs in a savepoint that is rolled back at its end, so examples never see
each other's rows. Tasks queued on commit never run here: the services they would call
are rules of their own. Runs on SQLite and PostgreSQL; ``STATE_MACHINE_EXAMPLES`` sets
the number of examples (200 by default, 2000 in ``make soak``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.services import operator_grant
from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order, OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start, payment_succeeded
from payments.collection.clawbacks import clawback_execute
from payments.collection.disputes import dispute_closed, dispute_opened
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.models import (
    Clawback,
    DisputeLine,
    LedgerAccount,
    LocalPayout,
    PaymentAttempt,
    Payout,
    PayoutPolicy,
    Refund,
    RefundLine,
)
from payments.payouts.controls import payout_approve, payout_mark_paid, payout_release
from payments.payouts.freezes import payout_policy_save
from payments.payouts.guard import PayoutStopped
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.policies import default_payout_policy
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.payouts.settlement import payout_failed, payout_paid, payout_sync
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor, processing_fee
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.money_helpers import enable_payouts

EXAMPLES = int(os.environ.get("STATE_MACHINE_EXAMPLES", 200))
STEPS = 15
CURRENCIES = ("JPY", "USD", "KWD")
PRICE_MAX = {"JPY": 20000, "USD": 30000, "KWD": 90000}
SELLER_KINDS = ("pending", "available", "in_transit", "disputed")
PLATFORM_KINDS = (
    "processor",
    "commission",
    "processor_fees",
    "disputes",
    "bank",
    "losses",
    "connected",
)
OPEN_PAYOUTS = ("awaiting_approval", "held", "scheduled")
local = LocalProcessor()


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Our own split of ``total`` in proportion to ``weights``: floors, then the units left
    one each to the largest remainders, ties to the earlier part; negative mirrored."""
    if total < 0:
        return [-part for part in largest_remainder(-total, weights)]
    whole = sum(weights)
    assert whole > 0 and all(w >= 0 for w in weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return parts


def pro_rata(amount: int, *, commission_left: int, share_left: int) -> tuple[int, int]:
    """(seller part, commission part) of ``amount``, pro rata, commission listed first."""
    commission, share = largest_remainder(amount, [commission_left, share_left])
    return share, commission


# --- the reference model --------------------------------------------------------------


@dataclass
class MLine:
    pk: int
    seller: int  # index into the machine's sellers
    seller_order: int
    gross: int
    commission: int
    share: int
    reserved: int = 0  # refunds that did not fail
    reserved_share: int = 0
    reserved_commission: int = 0
    refunded: int = 0  # refunds that succeeded
    refunded_share: int = 0
    refunded_commission: int = 0
    pending: int = 0  # what the seller's pending account holds for this line (owner side)


@dataclass
class MHold:
    """A dispute's part of one line, as held."""

    line: MLine
    amount: int
    share: int
    commission: int
    refunded_share: int = 0
    refunded_commission: int = 0


@dataclass
class MDispute:
    processor_id: str
    payment_id: str
    order: MOrder
    amount: int
    duplicate: bool
    held: int = 0
    holds: list[MHold] = field(default_factory=list)
    status: str = "open"


@dataclass
class MOrder:
    pk: int
    currency: str
    total: int
    lines: list[MLine]
    seller_orders: dict[int, int]  # seller order pk -> seller index
    payment_id: str = ""
    released: set[int] = field(default_factory=set)
    dispute: MDispute | None = None  # on the captured payment (one per payment)
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (payment id, amount)
    repaid_twice_allowed: int = 0  # refunds pending when the dispute opened, then succeeded

    @property
    def succeeded_refunds(self) -> int:
        return sum(line.refunded for line in self.lines)


@dataclass
class MRefundPart:
    line: MLine
    amount: int
    share: int
    commission: int
    # How it was taken when it succeeded:
    from_seller: int = 0
    from_hold: int = 0
    from_hold_commission: int = 0
    to_losses: int = 0  # of the seller's part, from a hold already lost
    to_losses_commission: int = 0  # of the commission's part, from a hold already lost
    hold: MHold | None = None


@dataclass
class MRefund:
    pk: int
    order: MOrder
    amount: int
    parts: list[MRefundPart]
    status: str = "pending"
    pending_at_dispute: bool = False


@dataclass
class MPayout:
    pk: int
    seller: int
    currency: str
    amount: int
    status: str
    method: str
    requires_approval: bool
    approved: bool = False
    clawed: int = 0  # taken back from its transfer by clawbacks
    bank: int = 0  # what its bank payout under way (or paid) pays


@dataclass
class MSeller:
    index: int
    obj: object
    hold_days: int
    method: str
    thresholds: dict[str, int]
    frozen: bool = False


class MoneyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._savepoint = transaction.savepoint()
        self.start = timezone.now()
        self.day = 0
        self.sellers: list[MSeller] = []
        self.orders: list[MOrder] = []
        self.refunds: list[MRefund] = []
        self.disputes: list[MDispute] = []
        self.payouts: list[MPayout] = []
        self.periods: set[tuple[int, str, str]] = set()
        self.owed: dict[tuple[int, str, str], int] = {}  # (seller, currency, kind) -> owed
        self.platform: dict[tuple[str, str], int] = {}  # (currency, kind) -> raw balance
        # Per (seller, currency): the seller's story in plain sums.
        self.earned: dict[tuple[int, str], int] = {}
        self.refunded: dict[tuple[int, str], int] = {}
        self.lost: dict[tuple[int, str], int] = {}
        self.paid_out: dict[tuple[int, str], int] = {}
        self.sent: dict[tuple[int, str], int] = {}  # what payouts took from available, net
        self.counter = 0

    def teardown(self) -> None:
        transaction.savepoint_rollback(self._savepoint)

    # --- helpers --------------------------------------------------------------------

    def now(self):
        return self.start + timedelta(days=self.day, hours=1)

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def move(self, seller: int, currency: str, kind: str, owed_delta: int) -> None:
        key = (seller, currency, kind)
        self.owed[key] = self.owed.get(key, 0) + owed_delta

    def post(self, currency: str, kind: str, raw_delta: int) -> None:
        self.platform[currency, kind] = self.platform.get((currency, kind), 0) + raw_delta

    def add(self, sums: dict, seller: int, currency: str, delta: int) -> None:
        sums[seller, currency] = sums.get((seller, currency), 0) + delta

    def take_from_sale(self, order: MOrder, line: MLine, amount: int) -> None:
        """The seller gives back ``amount`` of a line: pending while held, else available."""
        if line.seller_order in order.released:
            self.move(line.seller, order.currency, "available", -amount)
        else:
            self.move(line.seller, order.currency, "pending", -amount)
            line.pending -= amount

    def give_to_sale(self, order: MOrder, line: MLine, amount: int) -> None:
        self.take_from_sale(order, line, -amount)

    def claimed(self, seller: int, currency: str) -> int:
        """Open payouts, and the sellers' parts of pending refunds of released sales."""
        total = sum(
            p.amount
            for p in self.payouts
            if p.seller == seller and p.currency == currency and p.status in OPEN_PAYOUTS
        )
        for refund in self.refunds:
            if refund.status != "pending" or refund.order.currency != currency:
                continue
            for part in refund.parts:
                if part.line.seller == seller and part.line.seller_order in refund.order.released:
                    total += part.share
        return total

    def payable(self, payout: MPayout) -> int:
        claimed = self.claimed(payout.seller, payout.currency)
        if payout.status in OPEN_PAYOUTS:
            claimed -= payout.amount
        return self.owed.get((payout.seller, payout.currency, "available"), 0) - claimed

    def expect_refusal(self, error: type[Exception], call, *, match: str | None = None):
        event(f"refused: {error.__name__} {match or ''}".strip())
        # No savepoint of our own: some services commit what the check did (a payout
        # held or cancelled) and raise after, as their callers see them.
        with pytest.raises(error, match=match):
            call()

    # --- set-up ---------------------------------------------------------------------

    @initialize(
        other_rate=st.sampled_from([3333, 1250, 9999, 0]),
        kwd_fee=st.sampled_from([0, 150]),
        hold_days=st.lists(st.integers(0, 3), min_size=2, max_size=2),
        thresholds=st.fixed_dictionaries(
            {
                "JPY": st.integers(1, 20000),
                "USD": st.integers(1, 20000),
                "KWD": st.integers(1, 50000),
            }
        ),
    )
    def set_up(self, other_rate, kwd_fee, hold_days, thresholds):
        CommissionRuleFactory(percentage_bps=1000)  # 10 % by default
        self.customer = UserFactory()
        self.operator = operator_grant(user=UserFactory())
        default_hold = default_payout_policy().hold_days
        plain, approving, manual = (SellerFactory() for _ in range(3))
        # An odd rate for the second seller (33.33 % and the like), and for the third a
        # rule with a fixed fee and a cap in KWD.
        CommissionRuleFactory(scope="seller", seller=approving, percentage_bps=other_rate)
        if kwd_fee:
            CommissionRuleFactory(
                scope="seller",
                seller=manual,
                currency="KWD",
                percentage_bps=1200,
                fixed_fee_minor=kwd_fee,
                maximum_minor=5000,
            )
        for seller in (plain, approving, manual):
            enable_payouts(seller)
        manual.bank_account_holder, manual.bank_account_number = "Shop", "GB33BUKB20201555555555"
        manual.save()
        payout_policy_save(
            policy=PayoutPolicy(
                seller=approving, hold_days=hold_days[0], approval_thresholds=thresholds
            ),
            reason="test",
        )
        payout_policy_save(
            policy=PayoutPolicy(
                seller=manual, hold_days=hold_days[1], method=PayoutPolicy.Method.MANUAL
            ),
            reason="test",
        )
        self.sellers = [
            MSeller(0, plain, default_hold, "processor", {}),
            MSeller(1, approving, hold_days[0], "processor", dict(thresholds)),
            MSeller(2, manual, hold_days[1], "manual", {}),
        ]

    # --- sales ----------------------------------------------------------------------

    @rule(
        currency=st.sampled_from(CURRENCIES),
        cart=st.lists(
            st.tuples(st.integers(0, 2), st.integers(1, 2), st.integers(1, 3), st.booleans()),
            min_size=1,
            max_size=6,
        ),
        data=st.data(),
    )
    def sell(self, currency, cart, data):
        """An order from 1-3 sellers, 1-2 lines each, paid by card through the local
        processor (its fee, 2.9 % + 30, borne by the platform)."""
        per_seller: dict[int, int] = {}
        items = []
        for seller, _, quantity, cheap in cart:
            if per_seller.get(seller, 0) == 2:
                continue
            per_seller[seller] = per_seller.get(seller, 0) + 1
            top = 50 if cheap else PRICE_MAX[currency]
            price = data.draw(st.integers(1, top), label="price")
            product = ProductFactory(
                seller=self.sellers[seller].obj, price_minor=price, currency=currency, stock=3
            )
            items.append(CartItem(product.pk, quantity))
        order = place_order(customer=self.customer, cart_items=items)
        attempt = payment_start(order=order)
        local.payment_confirm(payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
        assert payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local")
        order.refresh_from_db()
        assert order.status == "paid" and order.currency == currency

        index = {s.obj.pk: s.index for s in self.sellers}
        lines = []
        seller_orders = {}
        for line in OrderLine.objects.filter(order=order).select_related("seller_order"):
            assert line.gross_minor == line.commission_minor + line.seller_share_minor
            assert 0 <= line.commission_minor <= line.gross_minor
            seller = index[line.seller_order.seller_id]
            seller_orders[line.seller_order_id] = seller
            lines.append(
                MLine(
                    pk=line.pk,
                    seller=seller,
                    seller_order=line.seller_order_id,
                    gross=line.gross_minor,
                    commission=line.commission_minor,
                    share=line.seller_share_minor,
                    pending=line.seller_share_minor,
                )
            )
        lines.sort(key=lambda line: line.pk)
        total = sum(line.gross for line in lines)
        assert order.total_minor == total
        model = MOrder(
            order.pk, currency, total, lines, seller_orders, attempt.processor_payment_id
        )
        self.orders.append(model)
        fee = processing_fee(total)
        self.post(currency, "processor", total - fee)
        self.post(currency, "processor_fees", fee)
        for line in lines:
            self.post(currency, "commission", -line.commission)
            self.move(line.seller, currency, "pending", line.share)
            self.add(self.earned, line.seller, currency, line.share)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def pay_twice(self, data):
        """A second payment of a paid order (a stale tab): refunded at once by the
        processor; the platform bears its fee; no seller is involved."""
        order = data.draw(st.sampled_from(self.orders), label="order")
        key = self.next_id("stale")
        stale = local.payment_create(
            amount_minor=order.total,
            currency=order.currency,
            transfer_group=f"order-{order.pk}",
            customer_email="x@example.com",
            metadata={},
            idempotency_key=key,
        )
        attempt = PaymentAttempt.objects.create(
            order_id=order.pk,
            number=2 + len(order.duplicates),
            processor="local",
            processor_payment_id=stale.id,
            amount_minor=order.total,
            currency=order.currency,
            idempotency_key=f"payment-{key}",
        )
        local.payment_confirm(payment_id=stale.id, card_number=CARD_SUCCEEDS)
        assert payment_succeeded(payment_id=stale.id, processor_name="local") is None
        attempt.refresh_from_db()
        assert attempt.status == PaymentAttempt.Status.CANCELED
        order.duplicates.append((stale.id, order.total))
        fee = processing_fee(order.total)
        self.post(order.currency, "processor", -fee)
        self.post(order.currency, "processor_fees", fee)

    # --- refunds --------------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def refund(self, data):
        """A refund of a whole order, a seller's part or a line, whole or partial."""
        order = data.draw(st.sampled_from(self.orders), label="order")
        scope = data.draw(st.sampled_from(["order", "seller_order", "line"]), label="scope")
        kwargs = {}
        lines = order.lines
        if scope == "seller_order":
            seller_order = data.draw(st.sampled_from(sorted(order.seller_orders)), label="so")
            kwargs["seller_order"] = SellerOrder(pk=seller_order)
            lines = [line for line in lines if line.seller_order == seller_order]
        elif scope == "line":
            line = data.draw(st.sampled_from(lines), label="line")
            kwargs["order_line"] = OrderLine(pk=line.pk)
            lines = [line]
        left = [line.gross - line.reserved for line in lines]
        refundable = sum(left)
        amount = data.draw(
            st.none() | st.integers(1, max(refundable, 1) + 1) | st.just(refundable),
            label="amount",
        )

        def call():
            return refund_create(order=Order(pk=order.pk), amount_minor=amount, **kwargs)

        if order.succeeded_refunds == order.total:
            return self.expect_refusal(InvalidState, call, match="Only a paid order")
        dispute = order.dispute
        if dispute is not None and dispute.status in ("open", "lost"):
            # The card network decides what the customer gets back.
            return self.expect_refusal(InvalidState, call, match="disputed")
        if refundable == 0:
            return self.expect_refusal(InvalidRequest, call, match="refunded already")
        if amount is not None and (amount <= 0 or amount > refundable):
            return self.expect_refusal(InvalidRequest, call, match="At most")
        amount = refundable if amount is None else amount
        refund = call()
        assert refund.amount_minor == amount
        parts = []
        for line, part in zip(lines, largest_remainder(amount, left), strict=True):
            if not part:
                continue
            share, commission = pro_rata(
                part,
                commission_left=line.commission - line.reserved_commission,
                share_left=line.share - line.reserved_share,
            )
            parts.append(MRefundPart(line, part, share, commission))
            line.reserved += part
            line.reserved_share += share
            line.reserved_commission += commission
        got = sorted(
            RefundLine.objects.filter(refund=refund).values_list(
                "order_line_id", "amount_minor", "seller_amount_minor", "commission_amount_minor"
            )
        )
        assert got == [(p.line.pk, p.amount, p.share, p.commission) for p in parts]
        model = MRefund(refund.pk, order, amount, parts)
        self.refunds.append(model)
        # The processor's answer now, or later (a rule of its own).
        outcome = data.draw(st.sampled_from(["later", "succeeded", "failed"]), label="outcome")
        if outcome == "succeeded":
            self.succeed(model)
        elif outcome == "failed":
            self.fail(model)

    def refunds_in(self, *statuses):
        return [refund for refund in self.refunds if refund.status in statuses]

    @precondition(lambda self: self.refunds_in("pending"))
    @rule(data=st.data())
    def refund_succeeds(self, data):
        self.succeed(data.draw(st.sampled_from(self.refunds_in("pending")), label="refund"))

    def succeed(self, refund: MRefund) -> None:
        refund_mark_succeeded(refund=Refund(pk=refund.pk))
        order, currency = refund.order, refund.order.currency
        dispute = order.dispute
        self.post(currency, "processor", -refund.amount)
        for part in refund.parts:
            line = part.line
            share_left = part.share
            hold = None
            if dispute is not None and dispute.status in ("open", "lost"):
                hold = next((h for h in dispute.holds if h.line is line), None)
            if hold is not None and dispute.status == "open":
                # Resolved against the dispute: out of what it holds for the line.
                taken = min(share_left, hold.share - hold.refunded_share)
                taken_commission = min(part.commission, hold.commission - hold.refunded_commission)
                hold.refunded_share += taken
                hold.refunded_commission += taken_commission
                self.move(line.seller, currency, "disputed", -taken)
                self.add(self.refunded, line.seller, currency, taken)
                part.from_hold, part.from_hold_commission, part.hold = taken, taken_commission, hold
                event("refund resolved against an open dispute")
                share_left -= taken
            elif hold is not None:
                # Lost already: resolved against the hold as if it had succeeded while the
                # dispute was open, then lost: the dispute took the seller's part and the
                # commission's part of it, the platform bears the double repayment.
                taken = min(share_left, hold.share - hold.refunded_share)
                taken_commission = min(part.commission, hold.commission - hold.refunded_commission)
                hold.refunded_share += taken
                hold.refunded_commission += taken_commission
                self.post(currency, "losses", taken + taken_commission)
                part.to_losses, part.to_losses_commission, part.hold = (
                    taken,
                    taken_commission,
                    hold,
                )
                event("refund succeeded after its dispute was lost")
                share_left -= taken
            if share_left:
                self.take_from_sale(order, line, share_left)
                self.add(self.refunded, line.seller, currency, share_left)
            part.from_seller = share_left
            self.post(currency, "commission", part.commission - part.to_losses_commission)
            line.refunded += part.amount
            line.refunded_share += part.share
            line.refunded_commission += part.commission
        refund.status = "succeeded"
        if refund.pending_at_dispute:
            order.repaid_twice_allowed += refund.amount

    def release_reservation(self, refund: MRefund) -> None:
        for part in refund.parts:
            part.line.reserved -= part.amount
            part.line.reserved_share -= part.share
            part.line.reserved_commission -= part.commission

    @precondition(lambda self: self.refunds_in("pending"))
    @rule(data=st.data())
    def refund_fails(self, data):
        self.fail(data.draw(st.sampled_from(self.refunds_in("pending")), label="refund"))

    def fail(self, refund: MRefund) -> None:
        refund_mark_failed(refund=Refund(pk=refund.pk))
        self.release_reservation(refund)
        refund.status = "failed"

    @precondition(lambda self: self.refunds_in("succeeded"))
    @rule(data=st.data())
    def refund_fails_after_success(self, data):
        """The customer's bank sent a succeeded refund back: every entry is given back,
        the seller's part to where the sale's money is now; a part that the refund took
        out of a dispute's hold goes back to that dispute: into the hold while it is open,
        to the seller once it was won, out of the platform's losses once it was lost."""
        refund = data.draw(st.sampled_from(self.refunds_in("succeeded")), label="refund")
        refund_mark_failed(refund=Refund(pk=refund.pk))
        event(
            "refund reversed"
            + (" (it had used a dispute's hold)" if any(p.from_hold for p in refund.parts) else "")
        )
        order, currency = refund.order, refund.order.currency
        self.post(currency, "processor", refund.amount)
        for part in refund.parts:
            line = part.line
            self.post(currency, "commission", -(part.commission - part.to_losses_commission))
            if part.from_seller:
                self.give_to_sale(order, line, part.from_seller)
                self.add(self.refunded, line.seller, currency, -part.from_seller)
            if part.from_hold or part.from_hold_commission:
                assert part.hold is not None and order.dispute is not None
                status = order.dispute.status
                self.add(self.refunded, line.seller, currency, -part.from_hold)
                if status == "won":  # the hold went back to the seller: so does this
                    self.give_to_sale(order, line, part.from_hold)
                else:
                    part.hold.refunded_share -= part.from_hold
                    part.hold.refunded_commission -= part.from_hold_commission
                if status == "open":
                    self.move(line.seller, currency, "disputed", part.from_hold)
                elif status == "lost":  # the lost dispute takes it; no double repayment
                    self.add(self.lost, line.seller, currency, part.from_hold)
                    self.post(currency, "commission", part.from_hold_commission)
                    self.post(currency, "losses", -(part.from_hold + part.from_hold_commission))
            if part.to_losses or part.to_losses_commission:
                assert part.hold is not None
                part.hold.refunded_share -= part.to_losses
                part.hold.refunded_commission -= part.to_losses_commission
                self.post(currency, "losses", -(part.to_losses + part.to_losses_commission))
            line.refunded -= part.amount
            line.refunded_share -= part.share
            line.refunded_commission -= part.commission
        self.release_reservation(refund)
        refund.status = "failed"
        if refund.pending_at_dispute:
            order.repaid_twice_allowed -= refund.amount

    @precondition(lambda self: self.refunds_in("succeeded", "failed"))
    @rule(data=st.data())
    def refund_event_repeated(self, data):
        """A repeated or late processor event changes nothing (a failed refund cannot
        succeed)."""
        refund = data.draw(st.sampled_from(self.refunds_in("succeeded", "failed")))
        if refund.status == "succeeded":
            refund_mark_succeeded(refund=Refund(pk=refund.pk))
        else:
            refund_mark_failed(refund=Refund(pk=refund.pk))
            self.expect_refusal(
                InvalidState, lambda: refund_mark_succeeded(refund=Refund(pk=refund.pk))
            )

    # --- disputes -------------------------------------------------------------------

    def disputable(self):
        payments = []
        for order in self.orders:
            if order.dispute is None:
                payments.append((order, order.payment_id, order.total, False))
            for payment_id, amount in order.duplicates:
                if not any(d.payment_id == payment_id for d in self.disputes):
                    payments.append((order, payment_id, amount, True))
        return payments

    def pending_refund_on(self, order: MOrder) -> bool:
        return any(refund.order is order for refund in self.refunds_in("pending"))

    @precondition(lambda self: self.disputable())
    @rule(data=st.data())
    def dispute_opens(self, data):
        payments = self.disputable()
        # Often a payment with a refund still pending: the dispute and the refund meet.
        pending = [p for p in payments if not p[3] and self.pending_refund_on(p[0])]
        if pending and data.draw(st.booleans(), label="on a pending refund"):
            payments = pending
        order, payment_id, paid, duplicate = data.draw(st.sampled_from(payments), label="payment")
        amount = data.draw(st.just(paid) | st.integers(1, paid), label="amount")
        dispute_id = self.next_id("dp")
        found = dispute_opened(
            processor_name="local",
            processor_dispute_id=dispute_id,
            payment_id=payment_id,
            amount_minor=amount,
        )
        assert found is not None and found.status == "open"
        # The dispute's processor_id names the payment for duplicates (one per payment).
        model = MDispute(dispute_id, payment_id, order, amount, duplicate)
        self.disputes.append(model)
        currency = order.currency
        if duplicate:
            model.held = min(amount, paid)
            self.post(currency, "processor", -model.held)
            self.post(currency, "disputes", model.held)
            return
        order.dispute = model
        for refund in self.refunds_in("pending"):
            if refund.order is order:
                refund.pending_at_dispute = True
        left = [
            (line, line.gross - line.refunded, line.share - line.refunded_share)
            for line in order.lines
        ]
        held = min(amount, sum(gross for _, gross, _ in left))
        if held > 0:
            for (line, _gross, share_left), part in zip(
                left, largest_remainder(held, [gross for _, gross, _ in left]), strict=True
            ):
                if not part:
                    continue
                share, commission = pro_rata(
                    part,
                    commission_left=line.commission - line.refunded_commission,
                    share_left=share_left,
                )
                model.holds.append(MHold(line, part, share, commission))
                if share:
                    self.take_from_sale(order, line, share)
                    self.move(line.seller, currency, "disputed", share)
            model.held = held
            self.post(currency, "processor", -held)
            self.post(currency, "disputes", held)
        got = sorted(
            DisputeLine.objects.filter(dispute=found).values_list(
                "order_line_id", "amount_minor", "seller_amount_minor", "commission_amount_minor"
            )
        )
        assert got == sorted((h.line.pk, h.amount, h.share, h.commission) for h in model.holds)

    @precondition(lambda self: self.disputes)
    @rule(data=st.data(), won=st.booleans())
    def dispute_closes(self, data, won):
        """Won: the money comes back and the sellers' held parts go back where they came
        from. Lost: the sellers lose what is still held, the platform its commission on
        it and what refunds already repaid of it. A repeated event changes nothing."""
        dispute = data.draw(st.sampled_from(self.disputes), label="dispute")
        closed = dispute_closed(
            processor_name="local", processor_dispute_id=dispute.processor_id, won=won
        )
        assert closed is not None
        if dispute.status != "open":
            assert closed.status == dispute.status
            return
        dispute.status = "won" if won else "lost"
        event(f"dispute {dispute.status}" + (" (duplicate)" if dispute.duplicate else ""))
        order, currency = dispute.order, dispute.order.currency
        self.post(currency, "disputes", -dispute.held)
        if won:
            self.post(currency, "processor", dispute.held)
        elif dispute.duplicate:
            self.post(currency, "losses", dispute.held)
        for hold in dispute.holds:
            line = hold.line
            still_held = hold.share - hold.refunded_share
            self.move(line.seller, currency, "disputed", -still_held)
            if won:
                self.give_to_sale(order, line, still_held)
                continue
            self.add(self.lost, line.seller, currency, still_held)
            self.post(currency, "commission", hold.commission - hold.refunded_commission)
            self.post(currency, "losses", hold.refunded_share + hold.refunded_commission)

    # --- holds ----------------------------------------------------------------------

    def release(self, order: MOrder, seller_order: int) -> None:
        if seller_order in order.released:
            return
        for line in order.lines:
            if line.seller_order == seller_order and line.pending:
                self.move(line.seller, order.currency, "pending", -line.pending)
                self.move(line.seller, order.currency, "available", line.pending)
                line.pending = 0
        order.released.add(seller_order)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def hold_released(self, data):
        order = data.draw(st.sampled_from(self.orders), label="order")
        seller_order = data.draw(st.sampled_from(sorted(order.seller_orders)), label="so")
        seller_order_hold_release(seller_order=SellerOrder(pk=seller_order), now=self.now())
        self.release(order, seller_order)

    # --- freezing -------------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def freeze_or_unfreeze(self, data):
        seller = data.draw(st.sampled_from(self.sellers), label="seller")
        frozen = not seller.frozen
        policy = PayoutPolicy.objects.filter(seller=seller.obj).first() or PayoutPolicy(
            seller=seller.obj
        )
        policy.frozen, policy.frozen_reason = frozen, "KYC review" if frozen else ""
        payout_policy_save(policy=policy, by=self.operator, reason="test")
        seller.frozen = frozen
        if frozen:
            for payout in self.payouts:
                if payout.seller == seller.index and payout.status in (
                    "awaiting_approval",
                    "scheduled",
                ):
                    payout.status = "held"

    # --- payout runs ----------------------------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(days=st.integers(0, 8), manual=st.booleans(), data=st.data())
    def payout_run(self, days, manual, data):
        """A scheduled run on a later day (daily schedules), or a manual run for one
        seller: due holds are released, then each seller is paid what is available less
        what open payouts and pending refunds of released sales claim."""
        self.day += days
        now = self.now()
        named = None
        if manual:
            named = data.draw(st.sampled_from(self.sellers), label="seller")
            report = run_payouts(now=now, sellers=[named.obj])
            period = f"manual-{timezone.localdate(now).isoformat()}"
        else:
            report = run_payouts(now=now)
            period = timezone.localdate(now).isoformat()
        for order in self.orders:
            for seller_order, seller in order.seller_orders.items():
                if self.day >= self.sellers[seller].hold_days:
                    self.release(order, seller_order)
        expected = []
        for seller in self.sellers:
            if named is not None and seller is not named:
                continue
            for currency in CURRENCIES:
                available = self.owed.get((seller.index, currency, "available"), 0)
                if available <= 0 or seller.frozen:
                    continue
                amount = available - self.claimed(seller.index, currency)
                if amount <= 0 or (seller.index, currency, period) in self.periods:
                    continue
                self.periods.add((seller.index, currency, period))
                threshold = seller.thresholds.get(currency)
                status = (
                    "awaiting_approval"
                    if threshold is not None and amount > threshold
                    else "scheduled"
                )
                expected.append((seller.obj.pk, currency, amount, status, seller.method))
        created = sorted(
            (p.seller_id, p.currency, p.amount_minor, p.status, p.method, p.pk)
            for p in report.created
        )
        assert [c[:5] for c in created] == sorted(expected)
        index = {s.obj.pk: s.index for s in self.sellers}
        for seller_id, currency, amount, status, method, pk in created:
            self.payouts.append(
                MPayout(
                    pk,
                    index[seller_id],
                    currency,
                    amount,
                    status,
                    method,
                    status == "awaiting_approval",
                )
            )

    def payouts_in(self, *statuses, method=None):
        return [
            p
            for p in self.payouts
            if p.status in statuses and (method is None or p.method == method)
        ]

    def guard(self, payout: MPayout) -> str | None:
        """payout_guard: frozen holds it; no longer covered cancels it."""
        if self.sellers[payout.seller].frozen:
            payout.status = "held"
            event("payout held by the guard")
            return "held"
        if payout.amount > self.payable(payout):
            payout.status = "cancelled"
            event("payout cancelled by the guard")
            return "cancelled"
        return None

    @precondition(lambda self: self.payouts)
    @rule(data=st.data())
    def approve(self, data):
        waiting = self.payouts_in("awaiting_approval")
        if waiting and data.draw(st.integers(0, 4), label="waiting") > 0:
            payout = data.draw(st.sampled_from(waiting), label="payout")
        else:
            payout = data.draw(st.sampled_from(self.payouts), label="payout")

        def call():
            return payout_approve(payout=Payout(pk=payout.pk), by=self.operator)

        if payout.status != "awaiting_approval":
            return self.expect_refusal(InvalidState, call, match="awaiting approval")
        payout.approved = True
        payout.status = "scheduled"
        if self.guard(payout) is not None:
            return self.expect_refusal(PayoutStopped, call)
        call()

    @precondition(lambda self: self.payouts_in("held"))
    @rule(data=st.data())
    def release_held(self, data):
        payout = data.draw(st.sampled_from(self.payouts_in("held")), label="payout")

        def call():
            return payout_release(payout=Payout(pk=payout.pk), by=self.operator, reason="ok")

        if self.sellers[payout.seller].frozen:
            return self.expect_refusal(PayoutStopped, call, match="stays held")
        payout.status = (
            "awaiting_approval" if payout.requires_approval and not payout.approved else "scheduled"
        )
        if self.guard(payout) is not None:
            return self.expect_refusal(PayoutStopped, call, match="not sent")
        call()

    @precondition(lambda self: self.payouts)
    @rule(data=st.data())
    def send(self, data):
        """payout_send, as the task queued by the run (or the sweeper, or the next run
        for a bank payout to send again) would call it."""
        ready = self.payouts_in("scheduled", "transferred", method="processor")
        if ready and data.draw(st.integers(0, 4), label="ready") > 0:
            payout = data.draw(st.sampled_from(ready), label="payout")
        else:
            payout = data.draw(st.sampled_from(self.payouts), label="payout")
        sent = payout_send(payout=Payout(pk=payout.pk))
        if (
            payout.method == "processor"
            and payout.status == "scheduled"
            and self.guard(payout) is None
        ):
            assert payout.amount <= self.owed.get((payout.seller, payout.currency, "available"), 0)
            self.move(payout.seller, payout.currency, "available", -payout.amount)
            self.move(payout.seller, payout.currency, "in_transit", payout.amount)
            self.add(self.sent, payout.seller, payout.currency, payout.amount)
            # The transfer: the platform's cash goes to the seller's processor account.
            self.post(payout.currency, "processor", -payout.amount)
            self.post(payout.currency, "connected", payout.amount)
            payout.status, payout.bank = "in_transit", payout.amount
        elif payout.status == "transferred" and not self.sellers[payout.seller].frozen:
            payout.bank = payout.amount - payout.clawed
            if payout.bank == 0:
                event("payout clawed back in full")
                payout.status = "paid"  # nothing left to pay out
            else:
                event("bank payout sent again")
                payout.status = "in_transit"  # from the seller's processor account
        assert sent.status == payout.status

    @precondition(lambda self: self.payouts_in("in_transit", "paid", "failed", "transferred"))
    @rule(data=st.data(), paid=st.booleans(), via_event=st.booleans())
    def processor_answers(self, data, paid, via_event):
        """The processor's payout.paid or payout.failed (directly, or as the event), also
        late: a paid payout can still fail (the bank returns it), and an answer about a
        bank payout that failed already changes nothing."""
        payout = data.draw(
            st.sampled_from(self.payouts_in("in_transit", "paid", "failed", "transferred")),
            label="payout",
        )
        if via_event:
            processor_payout_id = Payout.objects.get(pk=payout.pk).processor_payout_id
            with transaction.atomic():
                payout_sync(
                    processor_name="local",
                    processor_payout_id=processor_payout_id,
                    status="paid" if paid else "failed",
                    metadata={"payout_id": str(payout.pk)},
                )
        elif paid:
            if payout.status in ("in_transit", "paid", "transferred") and payout.bank:
                payout_paid(payout=Payout(pk=payout.pk))
        else:
            payout_failed(payout=Payout(pk=payout.pk), reason="Account closed")
        key = (payout.seller, payout.currency)
        if not paid and payout.status in ("in_transit", "paid") and payout.bank:
            # The processor's own books: the bank payout failed, its money is back in
            # the seller's processor account (where a clawback can take from it).
            made = Payout.objects.get(pk=payout.pk).processor_payout_id
            LocalPayout.objects.filter(pk=made).update(status="failed")
        if payout.status == "in_transit" and paid:
            event("payout paid")
            self.move(payout.seller, payout.currency, "in_transit", -payout.bank)
            self.add(self.paid_out, *key, payout.bank)
            self.post(payout.currency, "connected", -payout.bank)
            payout.status = "paid"
        elif payout.status == "in_transit":
            event("bank payout failed")
            payout.status = "transferred"  # the money waits in the seller's processor account
        elif payout.status == "paid" and not paid and payout.bank:
            event("paid payout returned by the bank")
            self.move(payout.seller, payout.currency, "in_transit", payout.bank)
            self.add(self.paid_out, *key, -payout.bank)
            self.post(payout.currency, "connected", payout.bank)
            payout.status = "transferred"
        assert Payout.objects.get(pk=payout.pk).status == payout.status

    @precondition(lambda self: self.payouts_in(*OPEN_PAYOUTS, "paid", method="manual"))
    @rule(data=st.data())
    def mark_paid(self, data):
        """An operator paid a manual payout by bank transfer."""
        payout = data.draw(
            st.sampled_from(self.payouts_in(*OPEN_PAYOUTS, "paid", method="manual")),
            label="payout",
        )

        def call():
            return payout_mark_paid(
                payout=Payout(pk=payout.pk), by=self.operator, bank_reference="TRX"
            )

        if payout.status == "paid":
            call()  # marking it paid again changes nothing
            return
        if payout.status != "scheduled":
            return self.expect_refusal(InvalidState, call, match="cannot be marked paid")
        if self.guard(payout) is not None:
            return self.expect_refusal(PayoutStopped, call)
        call()
        self.move(payout.seller, payout.currency, "available", -payout.amount)
        self.add(self.sent, payout.seller, payout.currency, payout.amount)
        self.add(self.paid_out, payout.seller, payout.currency, payout.amount)
        self.post(payout.currency, "bank", -payout.amount)
        payout.status = "paid"

    @precondition(lambda self: Clawback.objects.filter(status="pending").exists())
    @rule()
    def clawbacks_run(self):
        """The clawback tasks of refunds and lost disputes after a transfer: what the
        seller's processor account still holds of the payout is taken back to repay
        the seller's debt (payments/collection/clawbacks.py)."""
        for clawback in Clawback.objects.filter(status="pending").order_by("pk"):
            done = clawback_execute(clawback_id=clawback.pk)
            assert done.status in ("reversed", "nothing_held"), done.status
            if done.status != "reversed":
                continue
            event("clawed back from a transfer")
            taken = done.amount_minor
            payout = next(p for p in self.payouts if p.pk == done.payout_id)
            assert payout.status == "transferred"
            assert taken <= payout.amount - payout.clawed
            assert taken <= -self.owed.get((payout.seller, payout.currency, "available"), 0)
            payout.clawed += taken
            self.move(payout.seller, payout.currency, "available", taken)  # the debt repaid
            self.move(payout.seller, payout.currency, "in_transit", -taken)
            self.add(self.sent, payout.seller, payout.currency, -taken)
            self.post(payout.currency, "processor", taken)
            self.post(payout.currency, "connected", -taken)

    # --- invariants -----------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self):
        if not self.sellers:
            return
        index = {s.obj.pk: s.index for s in self.sellers}
        seen_seller: dict[tuple[int, str, str], int] = {}
        seen_platform: dict[tuple[str, str], int] = {}
        for seller_id, kind, currency, balance in LedgerAccount.objects.with_balance().values_list(
            "seller_id", "kind", "currency", "balance"
        ):
            if seller_id is None:
                seen_platform[currency, kind] = balance
            else:
                seen_seller[index[seller_id], currency, kind] = -balance
        for key in set(seen_seller) | set(self.owed):
            assert seen_seller.get(key, 0) == self.owed.get(key, 0), (
                f"seller {key}: ledger {seen_seller.get(key, 0)}, model {self.owed.get(key, 0)}"
            )
        for key in set(seen_platform) | set(self.platform):
            assert seen_platform.get(key, 0) == self.platform.get(key, 0), (
                f"platform {key}: ledger {seen_platform.get(key, 0)}, "
                f"model {self.platform.get(key, 0)}"
            )

    @invariant()
    def sellers_keep_what_they_earned(self):
        """pending + available + in transit + disputed + paid out == earned - refunded
        - lost, exactly; the disputed account holds exactly what open disputes hold;
        a seller is in debt only by what left for their bank."""
        held: dict[tuple[int, str], int] = {}
        for dispute in self.disputes:
            if dispute.status == "open":
                for hold in dispute.holds:
                    key = (hold.line.seller, dispute.order.currency)
                    held[key] = held.get(key, 0) + hold.share - hold.refunded_share
        for seller in self.sellers:
            for currency in CURRENCIES:
                key = (seller.index, currency)
                owed = {kind: self.owed.get((*key, kind), 0) for kind in SELLER_KINDS}
                kept = self.earned.get(key, 0) - self.refunded.get(key, 0) - self.lost.get(key, 0)
                assert sum(owed.values()) + self.paid_out.get(key, 0) == kept, (seller, currency)
                assert owed["disputed"] == held.get(key, 0), (
                    f"seller {seller.index} {currency}: disputed {owed['disputed']}, "
                    f"open disputes hold {held.get(key, 0)}"
                )
                assert owed["pending"] >= 0 and owed["in_transit"] >= 0
                assert owed["available"] >= -self.sent.get(key, 0), (seller, currency, owed)
                assert self.sent.get(key, 0) == owed["in_transit"] + self.paid_out.get(key, 0)

    @invariant()
    def customers_get_back_at_most_what_they_paid(self):
        """What a customer got back (succeeded refunds, lost disputes) is at most what they
        paid, except for the documented double repayment of a refund that was pending
        when the dispute opened, which the platform bears."""
        for order in self.orders:
            got_back = order.succeeded_refunds
            if order.dispute is not None and order.dispute.status == "lost":
                got_back += order.dispute.held
            assert order.total - got_back + order.repaid_twice_allowed >= 0, order.pk

    @invariant()
    def ledger_is_consistent(self):
        if not self.sellers:
            return
        report = ledger_check()
        assert report.ok, "\n".join(report.problems)


@pytest.mark.django_db
def test_money_state_machine():
    run_state_machine_as_test(
        MoneyMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        ),
    )
