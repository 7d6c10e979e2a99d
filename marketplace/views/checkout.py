"""Checkout, payment and the customer's orders.

Each request runs its queries in one transaction (``one_transaction``), but for the
payment pages: they commit the attempt before calling the processor, so they open
their own transactions, with the request's reads in the first one.
"""

from contextlib import nullcontext, suppress

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, Subquery, prefetch_related_objects
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from marketplace.forms_checkout import (
    BankDebitForm,
    CardForm,
    ShippingForm,
    local_test_cards,
    local_test_ibans,
)
from marketplace.kernel.errors import ApplicationError
from marketplace.models import Order, SellerOrder
from marketplace.services.cart import cart_contents, checkout_submit
from marketplace.web import cart_storage, one_transaction
from payments.collection.checkout import (
    DELAYED_METHOD_TYPES,
    local_bank_debit_pay,
    local_card_authenticate,
    local_card_pay,
    payment_attempt_open,
    payment_attempt_submit,
    payment_return,
)
from payments.models import PaymentAttempt
from payments.processors.base import CardDeclined, ProcessorError

# Seconds the order page waits before each look at a payment being confirmed: soon at
# first (the processor's event usually takes well under a second), then less and less
# often, never more than every 10 s.
POLL_DELAYS = (1, 1, 2, 2, 3, 5, 8, 10)
# A bank debit takes days: its order page looks again every half minute, no sooner.
DEBIT_POLL_SECONDS = 30
NOT_ANSWERING = "The payment service is not answering. Please try again shortly."


def _my_order(request, pk: int) -> Order:
    """One of the signed-in customer's orders; anybody else's is "not found"."""
    order = get_object_or_404(Order.objects.filter(customer=request.user), pk=pk)
    order.customer = request.user
    return order


def _reads():
    """The transaction of a payment page's reads (see ``one_transaction``)."""
    return transaction.atomic() if settings.SHOP_REQUEST_IN_ONE_TRANSACTION else nullcontext()


@one_transaction
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
    groups = cart_contents(storage)
    group = next((g for g in groups if g.currency == currency), None)
    if group is None:
        messages.info(request, f"Your cart has nothing in {currency}.")
        return redirect("marketplace:cart")
    if form.is_bound:
        form.renew_token()
    context = {"form": form, "group": group, "cart_count": lambda: sum(g.count for g in groups)}
    return render(request, "marketplace/checkout.html", context)


@require_http_methods(["GET", "POST"])
def order_pay(request, pk: int):
    """The payment page. The first transaction reads the customer and the order and
    writes the attempt (a new one, or the open one found); it commits before the
    processor is asked for the payment (``payment_attempt_submit``)."""
    with transaction.atomic():  # it writes: a transaction on every database
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        # Read under the order's lock (as ``order_lock``): the attempt is decided on it.
        sellers = SellerOrder.objects.filter(order=OuterRef("pk")).values("order")
        order = get_object_or_404(
            Order.objects.select_for_update(no_key=True, of=("self",))
            .filter(customer=request.user)
            .annotate(seller_count=Subquery(sellers.annotate(n=Count("pk")).values("n"))),
            pk=pk,
        )
        if order.status != Order.Status.AWAITING_PAYMENT:
            return redirect("marketplace:order_detail", pk=order.pk)
        try:
            attempt = payment_attempt_open(order=order)
        except ApplicationError as exc:
            # The order changed since it was read (cancelled through the API, expired,
            # or paid in another tab): show it as it is now.
            messages.error(request, exc.message)
            return redirect("marketplace:order_detail", pk=order.pk)
        except ProcessorError:
            messages.error(request, NOT_ANSWERING)
            return redirect("marketplace:order_detail", pk=order.pk)
    try:
        attempt, _ = payment_attempt_submit(attempt=attempt, customer_email=request.user.email)
    except ProcessorError:
        messages.error(request, NOT_ANSWERING)
        return redirect("marketplace:order_detail", pk=order.pk)
    if attempt.status == PaymentAttempt.Status.REQUIRES_ACTION:
        return redirect("marketplace:order_pay_confirm", pk=order.pk)
    if attempt.status == PaymentAttempt.Status.PROCESSING:
        return redirect("marketplace:order_detail", pk=order.pk)  # a debit under way
    # Two forms on the page, each with its own button: the one posted is bound.
    by_debit = request.method == "POST" and request.POST.get("method") == BankDebitForm.METHOD
    form = CardForm(request.POST if request.method == "POST" and not by_debit else None)
    debit_form = BankDebitForm(request.POST if by_debit else None)
    posted = debit_form if by_debit else form
    if request.method == "POST" and attempt.processor == "local" and posted.is_valid():
        try:
            if by_debit:
                attempt = local_bank_debit_pay(
                    attempt=attempt, iban=debit_form.cleaned_data["iban"]
                )
            else:
                attempt = local_card_pay(
                    attempt=attempt, card_number=form.cleaned_data["card_number"]
                )
        except CardDeclined as exc:
            posted.add_error("iban" if by_debit else "card_number", exc.message)
        except (ProcessorError, ApplicationError):
            messages.error(request, "The payment could not be completed. Please try again.")
            return redirect("marketplace:order_detail", pk=order.pk)
        else:
            if attempt.status == PaymentAttempt.Status.REQUIRES_ACTION:
                return redirect("marketplace:order_pay_confirm", pk=order.pk)
            return redirect("marketplace:order_detail", pk=order.pk)
    local = attempt.processor == "local"
    return render(
        request,
        "marketplace/order_pay.html",
        {
            "order": order,
            "attempt": attempt,
            "form": form,
            "debit_form": debit_form,
            "test_cards": local_test_cards() if local else [],
            "test_ibans": local_test_ibans() if local else [],
            "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        },
    )


@require_http_methods(["GET", "POST"])
def order_pay_confirm(request, pk: int):
    with _reads():
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        order = _my_order(request, pk)
        attempt = order.payment_attempts.filter(status=PaymentAttempt.Status.REQUIRES_ACTION).last()
        if attempt is None:
            return redirect("marketplace:order_detail", pk=order.pk)
        if request.method != "POST":
            return render(request, "marketplace/order_pay_confirm.html", {"order": order})
    try:
        local_card_authenticate(attempt=attempt, approve=request.POST.get("approve") == "yes")
    except CardDeclined as exc:
        messages.error(request, f"{exc.message} Try another card.")
        return redirect("marketplace:order_pay", pk=order.pk)
    except (ProcessorError, ApplicationError):
        # Confirmed already (a double click), or the processor did not answer.
        return redirect("marketplace:order_detail", pk=order.pk)
    return redirect("marketplace:order_detail", pk=order.pk)


@one_transaction
@login_required
@require_GET
def order_list(request):
    # The latest attempt's status and method, read in the orders' own statement (no
    # query more): "Payment processing" for a bank debit under way, "Payment failed"
    # for an order cancelled by a failed debit.
    latest = PaymentAttempt.objects.filter(order=OuterRef("pk")).order_by("-number")
    orders = (
        Order.objects.filter(customer=request.user)
        .annotate(
            payment_status=Subquery(latest.values("status")[:1]),
            payment_method_type=Subquery(latest.values("payment_method_type")[:1]),
        )
        .prefetch_related("seller_orders__seller")
    )
    return render(
        request,
        "marketplace/order_list.html",
        {"orders": orders, "delayed_methods": DELAYED_METHOD_TYPES},
    )


def _poll_number(request) -> int:
    try:
        return max(0, int(request.GET.get("poll", 0)))
    except ValueError:
        return 0


@one_transaction
@login_required
@require_GET
def order_detail(request, pk: int):
    """The order page; with ``HX-Request``, its live status while a payment is being
    confirmed (the page polls it, waiting longer each time: ``POLL_DELAYS``). Once the
    order is paid, the live status answers with the whole page's ``main``, which htmx
    swaps in (``HX-Retarget``/``HX-Reselect``): no second request to reload it."""
    live = bool(request.headers.get("HX-Request"))
    order = _my_order(request, pk)
    returned_from = request.GET.get("payment_intent", "")
    if returned_from and not live and order.status == Order.Status.AWAITING_PAYMENT:
        # Back from Stripe's page (``return_url``): show the processor's word at once;
        # if it does not answer, the event will tell (the page polls).
        with suppress(ProcessorError):
            payment_return(order=order, payment_id=returned_from)
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
    poll = _poll_number(request) if live else 0
    # A bank debit: "Payment processing" for days, or "Payment failed".
    delayed = attempt is not None and attempt.payment_method_type in DELAYED_METHOD_TYPES
    poll_delay = POLL_DELAYS[min(poll, len(POLL_DELAYS) - 1)]
    context = {
        "order": order,
        "attempt": attempt,
        "payment_delayed": delayed,
        "poll_delay": max(poll_delay, DEBIT_POLL_SECONDS) if delayed else poll_delay,
        "next_poll": poll + 1,
    }
    if live and order.status == Order.Status.AWAITING_PAYMENT:
        return render(request, "marketplace/includes/order_status.html", context)
    # Refund requests exist only on orders that were paid.
    lines = "seller_orders__lines__refund_requests" if order.paid_at else "seller_orders__lines"
    prefetch_related_objects(
        [order],
        Prefetch("seller_orders", queryset=SellerOrder.objects.select_related("seller")),
        lines,
    )
    if not live:
        return render(request, "marketplace/order_detail.html", context)
    # Only the page's main part is swapped in: its header stays.
    response = render(request, "marketplace/order_detail.html", context)
    response["HX-Retarget"] = "#main"
    response["HX-Reselect"] = "#main"
    response["HX-Reswap"] = "outerHTML"
    return response
