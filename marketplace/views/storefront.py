"""Public catalog pages: home, product list and search, product page, storefronts; each
request in one transaction (``one_transaction``)."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.models import Seller
from marketplace.filters import ProductFilter
from marketplace.models import Product
from marketplace.selectors.catalog import (
    categories_tree,
    product_get_for_viewer,
    products_featured,
)
from marketplace.web import one_transaction

PAGE_SIZE = 12


def _paginate(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


@one_transaction
@require_GET
def home(request):
    return render(
        request,
        "marketplace/home.html",
        {"featured": products_featured(), "categories": categories_tree()},
    )


@one_transaction
@require_GET
def product_list(request):
    filterset = ProductFilter(request.GET, queryset=Product.objects.listed())
    # An unknown category or a malformed value shows its error and no products.
    valid = filterset.is_valid()
    products = filterset.qs if valid else Product.objects.none()
    querystring = request.GET.copy()
    querystring.pop("page", None)
    context = {
        "filter": filterset,
        "page_obj": _paginate(request, products),
        "querystring": querystring.urlencode(),
        "seller": filterset.form.cleaned_data.get("seller") if valid else None,
    }
    return render(request, "marketplace/product_list.html", context)


@one_transaction
@require_GET
def product_detail(request, slug):
    product = product_get_for_viewer(slug=slug, user=request.user)
    return render(request, "marketplace/product_detail.html", {"product": product})


@one_transaction
@require_GET
def seller_storefront(request, slug):
    seller = get_object_or_404(Seller, slug=slug)
    products = Product.objects.listed().filter(seller=seller)
    return render(
        request,
        "marketplace/seller_storefront.html",
        {"seller": seller, "page_obj": _paginate(request, products)},
    )
