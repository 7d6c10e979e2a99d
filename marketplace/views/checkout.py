"""Checkout, payment and the customer's orders."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from marketplace.errors import ApplicationError
from marketplace.forms_checkout import CardForm, ShippingForm, local_test_cards
from marketplace.models import Order
from marketplace.services.cart import cart_contents, checkout_submit
from marketplace.web import cart_storage
from payments.checkout import local_card_authenticate, local_card_pay, payment_start
from payments.models import PaymentAttempt
from payments.processors.base import CardDeclined, ProcessorError


def _my_order(request, pk: int) -> Order:
    """One of the signed-in customer's orders; anybody else's is "not found"."""
    return get_object_or_404(
        Order.objects.prefetch_related(
            "seller_orders__seller", "seller_orders__lines__refund_requests"
        ),
        pk=pk,
        customer=request.user,
    )


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request, currency: str):
    storage = cart_storage(request)
    form = ShippingForm(request.POST or None, initial={"name": request.user.full_name})
    if request.method == "POST" and form.is_valid():
        # Before looking at the cart: a second submit of this form finds it empty,
        # and must still lead to the order the first one placed.
        try:
            order = checkout_submit(
                storage=storage,
                customer=request.user,
                currency=currency,
                shipping=form.shipping(),
                submission_token=form.cleaned_data["submission_token"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("marketplace:order_pay", pk=order.pk)
    group = next((g for g in cart_contents(storage) if g.currency == currency), None)
    if group is None:
        messages.info(request, f"Your cart has nothing in {currency}.")
        return redirect("marketplace:cart")
    if form.is_bound:
        form.renew_token()
    return render(request, "marketplace/checkout.html", {"form": form, "group": group})


@login_required
@require_http_methods(["GET", "POST"])
def order_pay(request, pk: int):
    order = _my_order(request, pk)
    if order.status != Order.Status.AWAITING_PAYMENT:
        return redirect("marketplace:order_detail", pk=order.pk)
    try:
        attempt = payment_start(order=order)
    except ProcessorError:
        messages.error(request, "The payment service is not answering. Please try again shortly.")
        return redirect("marketplace:order_detail", pk=order.pk)
    except ApplicationError as exc:
        # The order changed since it was read (cancelled through the API, expired, or
        # paid in another tab): show it as it is now.
        messages.error(request, exc.message)
        return redirect("marketplace:order_detail", pk=order.pk)
    if attempt.status == PaymentAttempt.Status.REQUIRES_ACTION:
        return redirect("marketplace:order_pay_confirm", pk=order.pk)
    form = CardForm(request.POST or None)
    if request.method == "POST" and attempt.processor == "local" and form.is_valid():
        try:
            attempt = local_card_pay(attempt=attempt, card_number=form.cleaned_data["card_number"])
        except CardDeclined as exc:
            form.add_error("card_number", exc.message)
        except (ProcessorError, ApplicationError):
            messages.error(request, "The payment could not be completed. Please try again.")
            return redirect("marketplace:order_detail", pk=order.pk)
        else:
            if attempt.status == PaymentAttempt.Status.REQUIRES_ACTION:
                return redirect("marketplace:order_pay_confirm", pk=order.pk)
            return redirect("marketplace:order_detail", pk=order.pk)
    return render(
        request,
        "marketplace/order_pay.html",
        {
            "order": order,
            "attempt": attempt,
            "form": form,
            "test_cards": local_test_cards() if attempt.processor == "local" else [],
            "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def order_pay_confirm(request, pk: int):
    order = _my_order(request, pk)
    attempt = order.payment_attempts.filter(status=PaymentAttempt.Status.REQUIRES_ACTION).last()
    if attempt is None:
        return redirect("marketplace:order_detail", pk=order.pk)
    if request.method == "POST":
        try:
            local_card_authenticate(attempt=attempt, approve=request.POST.get("approve") == "yes")
        except CardDeclined as exc:
            messages.error(request, f"{exc.message} Try another card.")
            return redirect("marketplace:order_pay", pk=order.pk)
        except (ProcessorError, ApplicationError):
            # Confirmed already (a double click), or the processor did not answer.
            return redirect("marketplace:order_detail", pk=order.pk)
        return redirect("marketplace:order_detail", pk=order.pk)
    return render(request, "marketplace/order_pay_confirm.html", {"order": order})


@login_required
@require_GET
def order_list(request):
    orders = Order.objects.filter(customer=request.user).prefetch_related("seller_orders__seller")
    return render(request, "marketplace/order_list.html", {"orders": orders})


@login_required
@require_GET
def order_detail(request, pk: int):
    order = _my_order(request, pk)
    attempt = order.payment_attempts.last()
    if (
        order.status == Order.Status.AWAITING_PAYMENT
        and attempt is not None
        and attempt.status == PaymentAttempt.Status.SUCCEEDED
    ):
        # The worker recorded the payment between reading the order and reading its
        # attempt: read the order again, or the page would say "Waiting for your
        # payment" with a Pay button (and the live status would stop polling).
        order = _my_order(request, pk)
    if request.headers.get("HX-Request"):
        # The live status polls while the payment is confirmed; once it is,
        # reload the whole page so every part shows the new state.
        response = render(
            request, "marketplace/includes/order_status.html", {"order": order, "attempt": attempt}
        )
        if order.status != Order.Status.AWAITING_PAYMENT:
            response["HX-Refresh"] = "true"
        return response
    return render(request, "marketplace/order_detail.html", {"order": order, "attempt": attempt})
