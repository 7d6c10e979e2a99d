"""The catalog: categories and the products sellers list in them."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse

from marketplace.kernel.currencies import currency_choices

MAX_PRICE_MINOR = 10**12  # 10 billion in a two-decimal currency


class Category(models.Model):
    """A category, optionally inside a parent category (two levels in practice)."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="marketplace_category_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.parent.name} › {self.name}" if self.parent_id and self.parent else self.name

    def get_absolute_url(self) -> str:
        return f"{reverse('marketplace:product_list')}?category={self.slug}"


class ProductQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def listed(self):
        """Products a visitor may see, with what a product card shows."""
        return self.active().select_related("seller", "category")


class Product(models.Model):
    """Something a seller sells. The price is an integer of the currency's minor units."""

    seller = models.ForeignKey("accounts.Seller", on_delete=models.PROTECT, related_name="products")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    title = models.CharField(max_length=200)
    slug = models.SlugField(
        max_length=80,
        unique=True,
        error_messages={"unique": "Another product already uses this address."},
    )
    description = models.TextField(blank=True)
    price_minor = models.BigIntegerField(
        "price (minor units)",
        help_text="In the currency's smallest unit: cents, yen, fils.",
        validators=[
            MinValueValidator(0, "The price cannot be negative."),
            # A line is at most ORDER_MAX_QUANTITY of it; this keeps every total in range.
            MaxValueValidator(MAX_PRICE_MINOR, "The price is too large."),
        ],
    )
    currency = models.CharField(max_length=3, choices=currency_choices())
    stock = models.IntegerField(
        default=0,
        validators=[
            MinValueValidator(0, "Stock cannot be negative."),
            MaxValueValidator(1_000_000, "Stock is at most 1,000,000."),
        ],
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="Inactive products are hidden."
    )
    is_featured = models.BooleanField(
        "featured", default=False, help_text="Shown on the home page."
    )
    image = models.ImageField(upload_to="products/%Y/%m/", blank=True)
    # With listing fees: the end of the listing period paid for (None: no fee applies).
    listed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price_minor__gte=0),
                name="marketplace_product_price_gte_0",
                violation_error_message="The price cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(stock__gte=0),
                name="marketplace_product_stock_gte_0",
                violation_error_message="Stock cannot be negative.",
            ),
        ]
        indexes = [
            models.Index(fields=["is_active", "-created_at"], name="product_active_recent_idx"),
            models.Index(fields=["seller", "is_active"], name="product_seller_active_idx"),
            models.Index(fields=["category", "is_active"], name="product_category_active_idx"),
            models.Index(fields=["is_featured", "is_active"], name="product_featured_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("marketplace:product_detail", kwargs={"slug": self.slug})

    @property
    def in_stock(self) -> bool:
        return self.stock > 0
