"""The money state machine (``test_money_state_machine.MoneyMachine``) with bank debits.

Three more operations: a sale paid by bank debit, which is *processing* (the order
awaits payment, its stock reserved, nothing posted: the model does not change); its
settlement as a success (the order is paid then and posted exactly like a card sale,
and joins the orders every other rule may refund, dispute and pay out); and its
settlement as a failure (the order is cancelled, its stock back, nothing posted).
Every invariant of the base machine must still hold after every step, with payout
runs and the rest interleaved while debits are processing, and one more: an order
whose debit has not succeeded has no ledger entry at all.

``STATE_MACHINE_EXAMPLES`` sets the examples as for the base machine; this one runs a
tenth of them (20 by default, about a minute and a half on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from marketplace.models import Order, OrderLine, Product
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import (
    local_bank_debit_pay,
    payment_failed,
    payment_start,
    payment_succeeded,
)
from payments.models import LedgerEntry, PaymentAttempt
from payments.processors.local import IBAN_FAILS, IBAN_SUCCEEDS, processing_fee
from tests.factories import ProductFactory
from tests.payments.test_money_state_machine import (
    CURRENCIES,
    EXAMPLES,
    PRICE_MAX,
    STEPS,
    MLine,
    MoneyMachine,
    MOrder,
    local,
)


@dataclass
class MDebit:
    order: int
    payment_id: str
    fails: bool
    products: dict[int, int]  # product pk -> stock before the order


class BankDebitMachine(MoneyMachine):
    def __init__(self) -> None:
        super().__init__()
        self.debits: list[MDebit] = []

    @rule(
        currency=st.sampled_from(CURRENCIES),
        cart=st.lists(
            st.tuples(st.integers(0, 2), st.integers(1, 3), st.booleans()),
            min_size=1,
            max_size=4,
        ),
        fails=st.booleans(),
        data=st.data(),
    )
    def sell_by_bank_debit(self, currency, cart, fails, data):
        """An order paid by bank debit: processing; nothing is posted, nothing changes
        in the model, the stock stays reserved."""
        items, stock = [], {}
        for seller, quantity, cheap in cart:
            price = data.draw(st.integers(1, 50 if cheap else PRICE_MAX[currency]), label="price")
            product = ProductFactory(
                seller=self.sellers[seller].obj, price_minor=price, currency=currency, stock=3
            )
            items.append(CartItem(product.pk, quantity))
            stock[product.pk] = 3
        order = place_order(customer=self.customer, cart_items=items)
        attempt = local_bank_debit_pay(
            attempt=payment_start(order=order), iban=IBAN_FAILS if fails else IBAN_SUCCEEDS
        )
        assert attempt.status == PaymentAttempt.Status.PROCESSING
        order.refresh_from_db()
        assert order.status == Order.Status.AWAITING_PAYMENT and order.paid_at is None
        self.debits.append(MDebit(order.pk, attempt.processor_payment_id, fails, stock))

    def processing(self, *, fails: bool) -> list[MDebit]:
        return [d for d in self.debits if d.fails == fails]

    def settle(self, debit: MDebit) -> None:
        settled = local.debit_settle(
            payment_id=debit.payment_id, now=timezone.now() + timedelta(days=30)
        )
        assert settled
        self.debits.remove(debit)

    @precondition(lambda self: self.processing(fails=False))
    @rule(data=st.data())
    def settle_success(self, data):
        """The debit succeeds: the order is paid now, posted exactly like a card sale."""
        debit = data.draw(st.sampled_from(self.processing(fails=False)), label="debit")
        self.settle(debit)
        order = payment_succeeded(payment_id=debit.payment_id, processor_name="local")
        assert order is not None
        order.refresh_from_db()
        assert order.status == Order.Status.PAID and order.paid_at is not None
        self.record_sale(order, debit.payment_id)

    @precondition(lambda self: self.processing(fails=True))
    @rule(data=st.data())
    def settle_failure(self, data):
        """The debit fails: the order is cancelled, its stock back, nothing posted."""
        debit = data.draw(st.sampled_from(self.processing(fails=True)), label="debit")
        self.settle(debit)
        failure = payment_failed(
            payment_id=debit.payment_id, processor_name="local", message="insufficient funds"
        )
        assert failure is not None and failure.order_cancelled
        assert Order.objects.get(pk=debit.order).status == Order.Status.CANCELLED
        for pk, before in debit.products.items():
            assert Product.objects.get(pk=pk).stock == before

    def record_sale(self, order: Order, payment_id: str) -> None:
        """The model of a paid order (as the base machine's ``sell`` records it)."""
        currency = order.currency
        index = {s.obj.pk: s.index for s in self.sellers}
        lines, seller_orders = [], {}
        for line in OrderLine.objects.filter(order=order).select_related("seller_order"):
            assert line.gross_minor == line.commission_minor + line.seller_share_minor
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
        self.orders.append(MOrder(order.pk, currency, total, lines, seller_orders, payment_id))
        fee = processing_fee(total)
        self.post(currency, "processor", total - fee)
        self.post(currency, "processor_fees", fee)
        for line in lines:
            self.post(currency, "commission", -line.commission)
            self.move(line.seller, currency, "pending", line.share)
            self.add(self.earned, line.seller, currency, line.share)

    @invariant()
    def nothing_of_a_debit_not_succeeded_is_posted(self):
        waiting = [d.order for d in self.debits]
        assert not LedgerEntry.objects.filter(order_line__order_id__in=waiting).exists()
        for pk in waiting:
            assert Order.objects.get(pk=pk).status == Order.Status.AWAITING_PAYMENT


@pytest.mark.django_db
def test_money_state_machine_with_bank_debits():
    run_state_machine_as_test(
        BankDebitMachine,
        settings=settings(
            max_examples=max(EXAMPLES // 10, 5),
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        ),
    )
