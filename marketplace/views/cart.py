"""The cart page and its forms; each request in one transaction (``one_transaction``)."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from marketplace.forms_checkout import CartAddForm, CartQuantityForm
from marketplace.kernel.errors import ApplicationError
from marketplace.models import Product
from marketplace.services.cart import cart_add, cart_contents, cart_set_quantity
from marketplace.web import cart_storage, one_transaction, safe_next


@one_transaction
@require_GET
def cart_detail(request):
    groups = cart_contents(cart_storage(request))
    return render(
        request,
        "marketplace/cart.html",
        {"groups": groups, "cart_count": lambda: sum(g.count for g in groups)},
    )


def _back(request, default="marketplace:cart"):
    return redirect(safe_next(request, reverse(default)))


def _added(request, storage, level: str, text: str):
    """The answer to "Add to cart": with htmx, the message and the header's new count
    (one request, no page shown again); else the message, and back to the page."""
    if request.headers.get("HX-Request"):
        context = {"level": level, "text": text, "cart_count": storage.count}
        return render(request, "marketplace/includes/cart_added.html", context)
    messages.add_message(request, getattr(messages, level.upper()), text)
    return _back(request)


@one_transaction
@require_POST
def cart_add_view(request):
    storage = cart_storage(request)
    form = CartAddForm(request.POST)
    if not form.is_valid():
        return _added(request, storage, "error", form.error_message())
    product = get_object_or_404(Product, pk=form.cleaned_data["product"], is_active=True)
    try:
        cart_add(storage=storage, product=product, quantity=form.cleaned_data["quantity"])
    except ApplicationError as exc:
        return _added(request, storage, "error", exc.message)
    return _added(request, storage, "success", f"“{product.title}” is in your cart.")


@one_transaction
@require_POST
def cart_update(request):
    form = CartQuantityForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_message())
        return redirect("marketplace:cart")
    product = get_object_or_404(Product, pk=form.cleaned_data["product"])
    try:
        cart_set_quantity(
            storage=cart_storage(request), product=product, quantity=form.cleaned_data["quantity"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("marketplace:cart")
