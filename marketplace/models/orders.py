"""Orders: one Order per checkout, one SellerOrder per seller in it, and the
lines. Every amount is an integer of the order's currency's minor units, and
the database checks that each line's parts add up."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PAID = "paid", "Paid"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT, db_index=True
    )
    total_minor = models.BigIntegerField(help_text="What the customer pays.")
    commission_minor = models.BigIntegerField(help_text="The platform's part of the total.")
    refunded_minor = models.BigIntegerField(default=0)
    # The platform's service fee: part of total_minor, not of any line.
    service_fee_minor = models.BigIntegerField(default=0, db_default=0)
    service_fee_refunded_minor = models.BigIntegerField(default=0, db_default=0)
    service_fee = models.ForeignKey(
        "payments.ServiceFee", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    shipping_name = models.CharField(max_length=150, blank=True)
    shipping_line1 = models.CharField("address", max_length=200, blank=True)
    shipping_line2 = models.CharField("address (line 2)", max_length=200, blank=True)
    shipping_city = models.CharField("city", max_length=100, blank=True)
    shipping_postal_code = models.CharField("postal code", max_length=20, blank=True)
    shipping_country = models.CharField("country", max_length=2, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="An integrator's own key-value pairs (payments/metadata.py has the limits).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_minor__gt=0), name="marketplace_order_total_positive"
            ),
            models.CheckConstraint(
                condition=Q(commission_minor__gte=0, commission_minor__lte=F("total_minor")),
                name="marketplace_order_commission_within_total",
            ),
            models.CheckConstraint(
                condition=Q(refunded_minor__gte=0, refunded_minor__lte=F("total_minor")),
                name="marketplace_order_refunded_within_total",
            ),
            models.CheckConstraint(
                condition=Q(
                    service_fee_minor__gte=0,
                    service_fee_minor__lt=F("total_minor"),
                    service_fee_refunded_minor__gte=0,
                    service_fee_refunded_minor__lte=F("service_fee_minor"),
                )
                & Q(service_fee_refunded_minor__lte=F("refunded_minor")),
                name="marketplace_order_service_fee_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    @property
    def refundable_minor(self) -> int:
        return self.total_minor - self.refunded_minor

    @property
    def shipping_country_name(self) -> str:
        from django_countries import countries

        return countries.name(self.shipping_country) or self.shipping_country


class SellerOrder(models.Model):
    """One seller's part of an order, fulfilled and paid out on its own."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="seller_orders")
    seller = models.ForeignKey(
        "accounts.Seller", on_delete=models.PROTECT, related_name="seller_orders"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    gross_minor = models.BigIntegerField()
    commission_minor = models.BigIntegerField()
    seller_share_minor = models.BigIntegerField()
    refunded_minor = models.BigIntegerField(default=0)
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="When the seller's share moved from pending to available."
    )
    shipped_at = models.DateTimeField(null=True, blank=True)
    tracking_number = models.CharField(max_length=100, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["order_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "seller"], name="marketplace_sellerorder_one_per_seller"
            ),
            models.CheckConstraint(
                condition=Q(gross_minor=F("commission_minor") + F("seller_share_minor")),
                name="marketplace_sellerorder_parts_add_up",
            ),
            models.CheckConstraint(
                condition=Q(refunded_minor__gte=0, refunded_minor__lte=F("gross_minor")),
                name="marketplace_sellerorder_refunded_within_gross",
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.order_id} · {self.seller}"

    @property
    def refunded_seller_minor(self) -> int:
        """What refunds took back from the seller's share (sums the prefetched lines)."""
        return sum(line.refunded_seller_minor for line in self.lines.all())

    @property
    def seller_net_minor(self) -> int:
        return self.seller_share_minor - self.refunded_seller_minor


class OrderLine(models.Model):
    """A product bought in an order, with a snapshot of its price and of the
    commission rule applied, so that later changes never rewrite the order."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="lines")
    seller_order = models.ForeignKey(SellerOrder, on_delete=models.PROTECT, related_name="lines")
    product = models.ForeignKey(
        "marketplace.Product", on_delete=models.PROTECT, related_name="order_lines"
    )
    title = models.CharField(max_length=200)
    unit_price_minor = models.BigIntegerField()
    quantity = models.PositiveIntegerField()
    gross_minor = models.BigIntegerField()
    commission_minor = models.BigIntegerField()
    seller_share_minor = models.BigIntegerField()
    refunded_minor = models.BigIntegerField(default=0)
    refunded_commission_minor = models.BigIntegerField(default=0)
    refunded_seller_minor = models.BigIntegerField(default=0)
    # The commission rule as it was when the order was placed.
    commission_rule = models.ForeignKey(
        "payments.CommissionRule", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rule_percentage_bps = models.PositiveIntegerField(default=0)
    rule_fixed_fee_minor = models.BigIntegerField(default=0)
    rule_minimum_minor = models.BigIntegerField(null=True, blank=True)
    rule_maximum_minor = models.BigIntegerField(null=True, blank=True)
    # Where the percentage came from: the rule, one of its volume tiers (with the
    # seller's trailing 30-day sales that chose it), or the seller's plan.
    commission_source = models.CharField(
        max_length=10,
        choices=[("rule", "Commission rule"), ("tier", "Volume tier"), ("plan", "Seller plan")],
        default="rule",
        db_default="rule",
    )
    tier_sales_minor = models.BigIntegerField(null=True, blank=True)
    seller_plan = models.ForeignKey(
        "payments.SellerPlan", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["seller_order_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="marketplace_orderline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price_minor__gte=0), name="marketplace_orderline_price_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(gross_minor=F("unit_price_minor") * F("quantity")),
                name="marketplace_orderline_gross_is_price_times_quantity",
            ),
            models.CheckConstraint(
                condition=Q(
                    gross_minor=F("commission_minor") + F("seller_share_minor"),
                    commission_minor__gte=0,
                    seller_share_minor__gte=0,
                ),
                name="marketplace_orderline_parts_add_up",
            ),
            models.CheckConstraint(
                condition=Q(
                    refunded_minor=F("refunded_commission_minor") + F("refunded_seller_minor"),
                    refunded_commission_minor__gte=0,
                    refunded_seller_minor__gte=0,
                    refunded_commission_minor__lte=F("commission_minor"),
                    refunded_seller_minor__lte=F("seller_share_minor"),
                ),
                name="marketplace_orderline_refund_parts_within_parts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.title}"

    @property
    def refundable_minor(self) -> int:
        return self.gross_minor - self.refunded_minor

    @property
    def seller_net_minor(self) -> int:
        """The seller's share less what refunds took back from it."""
        return self.seller_share_minor - self.refunded_seller_minor

    @property
    def open_refund_request(self) -> bool:
        """Whether a refund request waits for the seller (uses prefetched requests)."""
        return any(r.status == "requested" for r in self.refund_requests.all())
