"""Helpers of the collection tests: orders paid by the local card, disputes, and the
platform's balances."""

from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_start, payment_succeeded
from payments.collection.disputes import dispute_opened
from payments.models import LedgerAccount
from payments.processors.local import CARD_SUCCEEDS, LocalProcessor
from tests.factories import ProductFactory, SellerFactory, UserFactory


def balance(kind, currency="USD"):
    """The platform account's raw balance (earned money is negative)."""
    account = (
        LedgerAccount.objects.filter(seller=None, kind=kind, currency=currency)
        .with_balance()
        .first()
    )
    return account.balance if account else 0


def card_paid(prices, currency="USD"):
    """An order of one product per price (each its own seller), paid by the local card."""
    cart = []
    for price in prices:
        seller = SellerFactory(default_currency=currency)
        product = ProductFactory(seller=seller, price_minor=price, stock=1, currency=currency)
        cart.append(CartItem(product.pk, 1))
    order = place_order(customer=UserFactory(), cart_items=cart)
    attempt = payment_start(order=order)
    LocalProcessor().payment_confirm(
        payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS
    )
    payment_succeeded(payment_id=attempt.processor_payment_id, processor_name="local")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order, attempt.processor_payment_id


def dispute(payment_id, amount, name="dp_review"):
    return dispute_opened(
        processor_name="local",
        processor_dispute_id=name,
        payment_id=payment_id,
        amount_minor=amount,
    )
