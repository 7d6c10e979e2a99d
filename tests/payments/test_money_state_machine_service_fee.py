"""The money state machine (tests/payments/test_money_state_machine.py) with a customer
service fee configured in each currency: every order pays its lines plus the fee, which
the platform keeps in its ``service_fees`` account; the model predicts, independently,
the fee part of each refund (cumulative pro rata, half-up: refunding every line gives
back exactly the fee), its release when a refund fails or comes back, the fee part a
dispute holds (the disputed amount spread over the lines and the fee still held) and
what a lost dispute takes from the platform (never from a seller).

Only what the fee changes is overridden: the set-up (the fees), a sale (the total), a
refund (its fee part), a refund's outcomes, a dispute's hold and close, and the
customer's invariant. Examples: ``STATE_MACHINE_EXAMPLES`` / 4 (50 by default).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order, OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_start, payment_succeeded
from payments.collection.disputes import dispute_opened
from payments.collection.refunds import refund_create
from payments.models import DisputeLine, RefundLine, ServiceFee
from payments.processors.local import CARD_SUCCEEDS, processing_fee
from tests.factories import ProductFactory
from tests.payments.test_money_state_machine import (
    CURRENCIES,
    PRICE_MAX,
    MDispute,
    MHold,
    MLine,
    MoneyMachine,
    MOrder,
    MRefund,
    MRefundPart,
    largest_remainder,
    local,
    pro_rata,
)

EXAMPLES = max(1, int(os.environ.get("STATE_MACHINE_EXAMPLES", 200)) // 4)
STEPS = 15


def half_up(amount: int, numerator: int, denominator: int) -> int:
    return (2 * amount * numerator + denominator) // (2 * denominator)


class ServiceFeeMachine(MoneyMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fees: dict[str, tuple[int, int]] = {}  # currency -> (bps, fixed)
        self.fee_of: dict[int, int] = {}  # order pk -> its service fee
        self.fee_reserved: dict[int, int] = {}  # order pk -> fee of refunds not failed
        self.fee_refunded: dict[int, int] = {}  # order pk -> fee of refunds succeeded
        self.fee_part: dict[int, int] = {}  # refund pk -> its fee part
        self.fee_held: dict[str, int] = {}  # dispute id -> its fee part
        self.fee_twice: dict[int, int] = {}  # order pk -> fee repaid twice (pending refund)

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
        fees=st.fixed_dictionaries(
            {
                currency: st.tuples(
                    st.sampled_from([0, 1, 250, 333, 1000]), st.integers(0, 99)
                ).filter(lambda fee: fee != (0, 0))
                for currency in CURRENCIES
            }
        ),
    )
    def set_up(self, other_rate, kwd_fee, hold_days, thresholds, fees):
        MoneyMachine.set_up(self, other_rate, kwd_fee, hold_days, thresholds)
        for currency, (bps, fixed) in fees.items():
            ServiceFee.objects.create(
                currency=currency,
                percentage_bps=bps,
                fixed_fee_minor=fixed,
                active_from=self.start - timedelta(days=1),
            )
        self.fees = dict(fees)

    # --- a sale: the lines and the fee ------------------------------------------------

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
        """As the base machine's sale; the customer pays the fee too (ours: percentage of
        the lines half-up plus fixed, below the lines' total), the platform keeps it."""
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
        assert order.status == "paid"
        index = {s.obj.pk: s.index for s in self.sellers}
        lines, seller_orders = [], {}
        for line in OrderLine.objects.filter(order=order).select_related("seller_order"):
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
        gross = sum(line.gross for line in lines)
        bps, fixed = self.fees[currency]
        fee = min(half_up(gross, bps, 10_000) + fixed, gross - 1)
        assert (order.service_fee_minor, order.total_minor) == (fee, gross + fee)
        event("order with a service fee" if fee else "order whose fee rounds to nothing")
        # The base model's ``total`` stays the lines' gross (what refunds of lines reach).
        self.orders.append(
            MOrder(order.pk, currency, gross, lines, seller_orders, attempt.processor_payment_id)
        )
        self.fee_of[order.pk] = fee
        charged = processing_fee(gross + fee)
        self.post(currency, "processor", gross + fee - charged)
        self.post(currency, "processor_fees", charged)
        self.post(currency, "service_fees", -fee)
        for line in lines:
            self.post(currency, "commission", -line.commission)
            self.move(line.seller, currency, "pending", line.share)
            self.add(self.earned, line.seller, currency, line.share)

    # --- refunds: the fee part, pro rata ----------------------------------------------

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def refund(self, data):
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
            return self.expect_refusal(InvalidState, call, match="disputed")
        if refundable == 0:
            return self.expect_refusal(InvalidRequest, call, match="refunded already")
        if amount is not None and (amount <= 0 or amount > refundable):
            return self.expect_refusal(InvalidRequest, call, match="At most")
        amount = refundable if amount is None else amount
        fee, reserved = self.fee_of[order.pk], self.fee_reserved.get(order.pk, 0)
        lines_after = sum(line.reserved for line in order.lines) + amount
        target = fee if lines_after == order.total else half_up(fee, lines_after, order.total)
        fee_part = max(0, min(target, fee) - reserved)
        refund = call()
        assert (refund.amount_minor, refund.service_fee_minor) == (amount + fee_part, fee_part)
        event("refund with a fee part" if fee_part else "refund without a fee part")
        self.fee_part[refund.pk] = fee_part
        self.fee_reserved[order.pk] = reserved + fee_part
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
        outcome = data.draw(st.sampled_from(["later", "succeeded", "failed"]), label="outcome")
        if outcome == "succeeded":
            self.succeed(model)
        elif outcome == "failed":
            self.fail(model)

    def succeed(self, refund: MRefund) -> None:
        super().succeed(refund)
        part, order = self.fee_part[refund.pk], refund.order
        self.post(order.currency, "processor", -part)
        self.post(order.currency, "service_fees", part)
        self.fee_refunded[order.pk] = self.fee_refunded.get(order.pk, 0) + part
        if refund.pending_at_dispute:
            self.fee_twice[order.pk] = self.fee_twice.get(order.pk, 0) + part

    def release_reservation(self, refund: MRefund) -> None:
        super().release_reservation(refund)
        order = refund.order.pk
        self.fee_reserved[order] = self.fee_reserved.get(order, 0) - self.fee_part[refund.pk]

    @precondition(lambda self: self.refunds_in("succeeded"))
    @rule(data=st.data())
    def refund_fails_after_success(self, data):
        succeeded = {refund.pk for refund in self.refunds_in("succeeded")}
        super().refund_fails_after_success(data)
        (refund,) = [r for r in self.refunds if r.pk in succeeded and r.status == "failed"]
        part, order = self.fee_part[refund.pk], refund.order
        self.post(order.currency, "processor", part)
        self.post(order.currency, "service_fees", -part)
        self.fee_refunded[order.pk] -= part
        if refund.pending_at_dispute:
            self.fee_twice[order.pk] -= part

    # --- disputes: the fee part held, and lost by the platform ---------------------------

    def disputable(self):
        return [
            (order, payment_id, paid + (0 if duplicate else self.fee_of[order.pk]), duplicate)
            for order, payment_id, paid, duplicate in super().disputable()
        ]

    @precondition(lambda self: self.disputable())
    @rule(data=st.data())
    def dispute_opens(self, data):
        payments = self.disputable()
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
        fee_left = self.fee_of[order.pk] - self.fee_refunded.get(order.pk, 0)
        held = min(amount, sum(gross for _, gross, _ in left) + fee_left)
        fee_part = 0
        if held > 0:
            *parts, fee_part = largest_remainder(held, [*(g for _, g, _ in left), fee_left])
            for (line, _gross, share_left), part in zip(left, parts, strict=True):
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
        self.fee_held[dispute_id] = fee_part
        found.refresh_from_db()
        assert found.service_fee_minor == fee_part
        event("dispute holds a fee part" if fee_part else "dispute holds no fee")
        got = sorted(
            DisputeLine.objects.filter(dispute=found).values_list(
                "order_line_id", "amount_minor", "seller_amount_minor", "commission_amount_minor"
            )
        )
        assert got == sorted((h.line.pk, h.amount, h.share, h.commission) for h in model.holds)

    @precondition(lambda self: self.disputes)
    @rule(data=st.data(), won=st.booleans())
    def dispute_closes(self, data, won):
        """As the base machine; a lost dispute of a sale also takes its fee part from the
        platform's service_fees (a won one gives it back with the rest)."""
        before = {dispute.processor_id: dispute.status for dispute in self.disputes}
        super().dispute_closes(data, won)
        for dispute in self.disputes:
            lost_now = before[dispute.processor_id] == "open" and dispute.status == "lost"
            if lost_now and not dispute.duplicate:
                fee_part = self.fee_held[dispute.processor_id]
                self.post(dispute.order.currency, "service_fees", fee_part)

    @invariant()
    def customers_get_back_at_most_what_they_paid(self):
        for order in self.orders:
            fee = self.fee_of[order.pk]
            got_back = order.succeeded_refunds + self.fee_refunded.get(order.pk, 0)
            if order.dispute is not None and order.dispute.status == "lost":
                got_back += order.dispute.held
            allowed = order.repaid_twice_allowed + self.fee_twice.get(order.pk, 0)
            assert order.total + fee - got_back + allowed >= 0, order.pk
            assert 0 <= self.fee_refunded.get(order.pk, 0) <= fee
            if order.succeeded_refunds == order.total:
                assert self.fee_refunded.get(order.pk, 0) == fee  # every line: all the fee
            db = Order.objects.values_list("service_fee_refunded_minor", flat=True).get(pk=order.pk)
            assert db == self.fee_reserved.get(order.pk, 0)


@pytest.mark.django_db
def test_money_state_machine_with_a_service_fee():
    run_state_machine_as_test(
        ServiceFeeMachine,
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
