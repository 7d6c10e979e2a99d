"""Helpers that build orders and move them through payment, for money tests."""

from marketplace.services.orders import CartItem, place_order
from payments.captures import order_payment_captured
from tests.factories import ProductFactory, UserFactory


def paid_order(lines, *, customer=None, fee=0):
    """``lines``: [(seller, unit price, quantity)]; returns the captured order."""
    cart = []
    for seller, price, quantity in lines:
        product = ProductFactory(
            seller=seller, price_minor=price, stock=quantity, currency=seller.default_currency
        )
        cart.append(CartItem(product.pk, quantity))
    order = place_order(customer=customer or UserFactory(), cart_items=cart)
    order_payment_captured(order=order, processor_fee_minor=fee)
    order.refresh_from_db()
    return order


def enable_payouts(seller):
    """Give a seller a local connected account that has finished onboarding."""
    from payments.models import LocalAccount

    LocalAccount.objects.create(
        id=f"acct_local_{seller.pk}",
        email=seller.user.email,
        country="US",
        details_submitted=True,
        idempotency_key=f"acct-{seller.pk}",
    )
    seller.payout_account_id, seller.payout_status = f"acct_local_{seller.pk}", "enabled"
    seller.save()
    return seller
