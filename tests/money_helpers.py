"""Helpers that build orders and move them through payment, for money tests."""

from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
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


def pay_by_card(run, order, card=None):
    """Pay ``order`` through the local processor with a test card (4242… by default),
    its events processed by ``run`` (the fixture); returns the order read again."""
    from payments.collection.checkout import payment_start
    from payments.processors.local import CARD_SUCCEEDS, LocalProcessor

    attempt = run(payment_start, order=order)
    run(
        LocalProcessor().payment_confirm,
        payment_id=attempt.processor_payment_id,
        card_number=card or CARD_SUCCEEDS,
    )
    order.refresh_from_db()
    return order


def pay_again_from_a_stale_tab(run, order):
    """A second payment of the paid ``order`` appears at the processor (a stale browser
    tab) and succeeds; returns its attempt (the order refunds it when it arrives)."""
    from payments.models import PaymentAttempt
    from payments.processors.local import CARD_SUCCEEDS, LocalProcessor

    local = LocalProcessor()
    stale = local.payment_create(
        amount_minor=order.total_minor,
        currency=order.currency,
        transfer_group=f"order-{order.pk}",
        customer_email="x@example.com",
        metadata={},
        idempotency_key="stale-tab",
    )
    attempt = PaymentAttempt.objects.create(
        order=order,
        number=order.payment_attempts.count() + 1,
        processor="local",
        processor_payment_id=stale.id,
        amount_minor=order.total_minor,
        currency=order.currency,
        idempotency_key="payment-stale",
    )
    run(local.payment_confirm, payment_id=stale.id, card_number=CARD_SUCCEEDS)
    attempt.refresh_from_db()
    return attempt
