"""A seller's own product pages: list, create, edit, deactivate and re-list."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import seller_required
from marketplace.forms import ProductForm
from marketplace.kernel.currencies import to_major_units
from marketplace.kernel.form_errors import add_service_error
from marketplace.selectors.catalog import seller_product_get, seller_products
from marketplace.services.products import product_create, product_set_active, product_update


@seller_required
def product_list(request):
    products = seller_products(seller=request.seller).order_by("-is_active", "-created_at", "-id")
    return render(request, "marketplace/seller/product_list.html", {"products": products})


@seller_required
@require_http_methods(["GET", "POST"])
def product_new(request):
    form = ProductForm(
        request.POST or None,
        request.FILES or None,
        initial={"currency": request.seller.default_currency},
    )
    if request.method == "POST" and form.is_valid():
        try:
            product = product_create(seller=request.seller, **form.service_fields())
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"“{product.title}” is listed.")
            return redirect("marketplace:seller_product_list")
    return render(request, "marketplace/seller/product_form.html", {"form": form, "product": None})


@seller_required
@require_http_methods(["GET", "POST"])
def product_edit(request, slug):
    product = seller_product_get(seller=request.seller, slug=slug)
    form = ProductForm(
        request.POST or None,
        request.FILES or None,
        initial={
            "title": product.title,
            "category": product.category_id,
            "description": product.description,
            "price": to_major_units(product.price_minor, product.currency),
            "currency": product.currency,
            "stock": product.stock,
            "slug": product.slug,
            "image": product.image,
            "is_active": product.is_active,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            product = product_update(
                product=product, seller=request.seller, **form.service_fields()
            )
        except ValidationError as exc:
            add_service_error(form, exc)
            product.refresh_from_db()
        else:
            messages.success(request, f"“{product.title}” was saved.")
            return redirect("marketplace:seller_product_list")
    return render(
        request, "marketplace/seller/product_form.html", {"form": form, "product": product}
    )


@seller_required
@require_POST
def product_deactivate(request, slug):
    product = seller_product_get(seller=request.seller, slug=slug)
    product_set_active(product=product, seller=request.seller, active=False)
    messages.success(request, f"“{product.title}” is hidden from the shop.")
    return redirect("marketplace:seller_product_list")


@seller_required
@require_POST
def product_activate(request, slug):
    product = seller_product_get(seller=request.seller, slug=slug)
    product_set_active(product=product, seller=request.seller, active=True)
    messages.success(request, f"“{product.title}” is listed again.")
    return redirect("marketplace:seller_product_list")
