"""Services that change the catalog. Every web page, admin action and command
that writes a product goes through these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.currencies import MAX_MAJOR_UNITS, SUPPORTED_CURRENCIES, exponent
from marketplace.kernel.slugs import unique_slug
from marketplace.models import Category, Product
from payments.ledger.locks import sellers_money_lock
from payments.revenue.listing_fees import product_listed

SLUG_TAKEN = "Another product already uses this address."

# Fields a seller may set on their own product.
EDITABLE_FIELDS = (
    "title",
    "category",
    "description",
    "price_minor",
    "currency",
    "stock",
    "slug",
    "image",
    "is_active",
)


def _check_price(product: Product) -> None:
    """A price is at most ``MAX_MAJOR_UNITS`` (10,000,000) of its currency's major units,
    as on the site's form: 10,000,000 JPY, 10,000,000.00 USD. The site and the API both
    come through here."""
    if product.currency not in SUPPORTED_CURRENCIES or not isinstance(product.price_minor, int):
        return  # full_clean says what is wrong
    cap = MAX_MAJOR_UNITS * 10 ** exponent(product.currency)
    if product.price_minor > cap:
        raise ValidationError(
            {
                "price_minor": (
                    f"The price cannot be more than {MAX_MAJOR_UNITS:,} {product.currency} "
                    f"({cap} in minor units)."
                )
            }
        )


def _save(product: Product) -> Product:
    """Validate against the model's rules and constraints, then save, or raise ValidationError."""
    _check_price(product)
    product.full_clean()
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError as exc:  # another product took the slug between check and save
        raise ValidationError({"slug": SLUG_TAKEN}) from exc
    return product


def _listing_lock(seller_ids: Iterable[int]) -> None:
    """Before a product row is written to list it again: its sellers' money locks, which
    its listing fee needs and which come before a product's row in the lock order of
    every money service (a seller order's cancellation holds the money lock and then
    returns stock to the product; payments.ledger.locks)."""

    sellers_money_lock(seller_ids)


def _listed(product: Product) -> None:
    """A product became listed (created active, or active again): its listing fee, if one
    applies and its last listing has ended (payments.revenue.listing_fees)."""

    product_listed(product=product)


def product_create(
    *,
    seller: Seller,
    title: str,
    category: Category,
    price_minor: int,
    currency: str,
    stock: int,
    description: str = "",
    slug: str = "",
    image: UploadedFile | None = None,
    is_active: bool = True,
) -> Product:
    """List a new product for a seller.

    A blank slug is made from the title; a slug the seller typed that another
    product uses is refused, never silently changed. Price and stock cannot be
    negative (the database refuses it too).
    """
    product = Product(
        seller=seller,
        title=title,
        category=category,
        description=description,
        price_minor=price_minor,
        currency=currency,
        stock=stock,
        slug=slug or unique_slug(Product, title),
        is_active=is_active,
    )
    if image:
        product.image = image
    with transaction.atomic():
        _save(product)
        _listed(product)
    return product


def product_update(*, product: Product, seller: Seller, **changes: Any) -> Product:
    """Change a seller's own product. Another seller's product is never touched."""
    if product.seller_id != seller.pk:
        raise PermissionDenied("You can only change your own products.")
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {', '.join(sorted(unknown))}")
    if changes.get("slug") == "":
        changes["slug"] = product.slug
    if "image" in changes and changes["image"] is None:
        del changes["image"]  # no new upload keeps the current image
    was_active = product.is_active
    for field, value in changes.items():
        setattr(product, field, value)
    with transaction.atomic():
        if product.is_active and not was_active:
            _listing_lock([product.seller_id])
        _save(product)
        if not was_active:
            _listed(product)
    return product


def product_set_active(*, product: Product, seller: Seller, active: bool) -> Product:
    """Hide a product from the shop (deactivate) or list it again."""
    if product.seller_id != seller.pk:
        raise PermissionDenied("You can only change your own products.")
    if product.is_active != active:
        product.is_active = active
        with transaction.atomic():
            if active:
                _listing_lock([product.seller_id])
            product.save(update_fields=["is_active", "updated_at"])
            _listed(product)
    return product


def products_set_active_bulk(*, products: QuerySet[Product], active: bool) -> int:
    """Operators list or hide many products at once (moderation); returns how many changed.
    Products listed again are charged their listing fee as one listed by its seller."""
    with transaction.atomic():
        changed = list(products.exclude(is_active=active).select_related("seller", "category"))
        if active:
            _listing_lock({product.seller_id for product in changed})
        count = Product.objects.filter(pk__in=[product.pk for product in changed]).update(
            is_active=active, updated_at=timezone.now()
        )
        for product in changed if active else []:
            product.is_active = True
            _listed(product)
    return count
