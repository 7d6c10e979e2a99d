"""The cart page and its forms."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from marketplace.errors import ApplicationError
from marketplace.forms_checkout import CartAddForm, CartQuantityForm
from marketplace.models import Product
from marketplace.services.cart import cart_add, cart_contents, cart_set_quantity
from marketplace.web import cart_storage, safe_next


@require_GET
def cart_detail(request):
    return render(
        request, "marketplace/cart.html", {"groups": cart_contents(cart_storage(request))}
    )


def _back(request, default="marketplace:cart"):
    return redirect(safe_next(request, reverse(default)))


@require_POST
def cart_add_view(request):
    form = CartAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.error_message())
        return _back(request)
    product = get_object_or_404(Product, pk=form.cleaned_data["product"], is_active=True)
    try:
        cart_add(
            storage=cart_storage(request), product=product, quantity=form.cleaned_data["quantity"]
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{product.title}” is in your cart.")
    return _back(request)


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
