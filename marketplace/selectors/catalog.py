"""Read-side queries of the catalog. Each returns a queryset that runs a fixed
number of queries however many rows it holds."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404

from accounts.models import Seller
from marketplace.models import Category, Product

FEATURED_LIMIT = 8


def products_featured(*, limit: int = FEATURED_LIMIT) -> list[Product]:
    """Featured products for the home page, topped up with the newest ones."""
    featured = list(Product.objects.listed().filter(is_featured=True)[:limit])
    if len(featured) < limit:
        featured += list(
            Product.objects.listed()
            .exclude(pk__in=[p.pk for p in featured])
            .order_by("-created_at", "-id")[: limit - len(featured)]
        )
    return featured


def categories_tree() -> QuerySet[Category]:
    """Top-level categories with their children and a count of listed products."""
    children = Category.objects.annotate(
        listed_count=Count("products", filter=Q(products__is_active=True))
    )
    return Category.objects.filter(parent__isnull=True).prefetch_related(
        Prefetch("children", queryset=children)
    )


def category_and_children_q(category: Category) -> Q:
    """Products in a category or any of its sub-categories."""
    return Q(category=category) | Q(category__parent=category)


def product_get_for_viewer(*, slug: str, user) -> Product:
    """A product page: active products for everyone, inactive ones for their seller only."""
    product = (
        Product.objects.select_related("seller", "category", "category__parent")
        .filter(slug=slug)
        .first()
    )
    if product is None:
        raise Http404("No such product.")
    if not product.is_active and not (user.is_authenticated and product.seller.user_id == user.pk):
        raise Http404("No such product.")
    return product


def seller_products(*, seller: Seller) -> QuerySet[Product]:
    """All of a seller's products, active or not, for their own pages."""
    return Product.objects.filter(seller=seller).select_related("category", "category__parent")


def seller_product_get(*, seller: Seller, slug: str) -> Product:
    """One of the seller's own products; another seller's is "not found"."""
    product = seller_products(seller=seller).filter(slug=slug).first()
    if product is None:
        raise Http404("No such product in your shop.")
    return product
