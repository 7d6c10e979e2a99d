"""Serializers of the shop API: shapes only; the services decide."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.kernel.api.expand import ExpandableList
from marketplace.kernel.api.fields import SlugRefField, StrictIntegerField
from marketplace.kernel.api.metadata_patch import MetadataField
from marketplace.kernel.currencies import currency_choices
from marketplace.models import Category, Order, OrderLine, Product, SellerOrder
from marketplace.models.catalog import MAX_PRICE_MINOR


class CategorySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    parent: SlugRefField = SlugRefField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Category
        fields = ["id", "name", "slug", "parent"]


class ProductSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    seller: SlugRefField = SlugRefField(slug_field="slug", read_only=True)
    category: SlugRefField = SlugRefField(slug_field="slug", queryset=Category.objects.all())
    currency = serializers.ChoiceField(choices=currency_choices())
    price_minor = StrictIntegerField(
        min_value=0,
        max_value=MAX_PRICE_MINOR,
        help_text="At most 10,000,000 of the currency's major units (the service checks).",
    )
    stock = StrictIntegerField(min_value=0, max_value=1_000_000)

    class Meta:
        model = Product
        fields = [
            "id",
            "title",
            "slug",
            "seller",
            "category",
            "description",
            "price_minor",
            "currency",
            "stock",
            "is_active",
            "created_at",
        ]
        read_only_fields = ["id", "seller", "created_at"]
        extra_kwargs = {"slug": {"required": False, "allow_blank": True}}


class OrderLineSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """A line and its split: what the customer paid, the platform's commission, the
    seller's share, and the commission rule applied (as it was when ordered)."""

    seller = serializers.CharField(source="seller_order.seller.slug")
    rule = serializers.SerializerMethodField()

    class Meta:
        model = OrderLine
        fields = [
            "id",
            "product",
            "title",
            "seller",
            "unit_price_minor",
            "quantity",
            "gross_minor",
            "commission_minor",
            "seller_share_minor",
            "refunded_minor",
            "rule",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "description": "The commission as frozen on the line: the percentage actually "
            "applied, where it came from (source: rule, tier or plan), the seller's trailing "
            "30-day sales that chose the tier, the seller's plan.",
        }
    )
    def get_rule(self, line: OrderLine) -> dict[str, Any]:
        return {
            "id": line.commission_rule_id,
            "percentage_bps": line.rule_percentage_bps,
            "fixed_fee_minor": line.rule_fixed_fee_minor,
            "minimum_minor": line.rule_minimum_minor,
            "maximum_minor": line.rule_maximum_minor,
            "source": line.commission_source,
            "tier_sales_minor": line.tier_sales_minor,
            "seller_plan": line.seller_plan_id,
        }


METADATA_SCHEMA = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {"type": "string", "maxLength": 500},
    "description": "Your own key-value pairs: at most 50 keys of at most 40 characters "
    "(no [ or ]), string values of at most 500 characters.",
}


@extend_schema_field(METADATA_SCHEMA)
class MetadataReadField(serializers.DictField):  # type: ignore[type-arg]
    """``metadata`` as stored (every read shows it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(), read_only=True, **kwargs)


class SellerOrderSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    lines = OrderLineSerializer(many=True, read_only=True)
    currency = serializers.CharField(source="order.currency")

    class Meta:
        model = SellerOrder
        fields = [
            "id",
            "order",
            "status",
            "currency",
            "gross_minor",
            "commission_minor",
            "seller_share_minor",
            "refunded_minor",
            "released_at",
            "shipped_at",
            "tracking_number",
            "delivered_at",
            "lines",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    lines = OrderLineSerializer(many=True, read_only=True)
    seller_orders = ExpandableList(SellerOrderSerializer)
    metadata = MetadataReadField()

    class Meta:
        model = Order
        fields = [
            "id",
            "status",
            "currency",
            "total_minor",
            "service_fee_minor",
            "refunded_minor",
            "service_fee_refunded_minor",
            "shipping_name",
            "shipping_line1",
            "shipping_line2",
            "shipping_city",
            "shipping_postal_code",
            "shipping_country",
            "created_at",
            "paid_at",
            "lines",
            "seller_orders",
            "metadata",
        ]
        read_only_fields = fields


class OrderItemRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    product = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    quantity = StrictIntegerField(min_value=1, max_value=settings.ORDER_MAX_QUANTITY)


class ShippingRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=150)
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = serializers.RegexField(r"^[A-Z]{2}$", help_text="ISO 3166 code, e.g. US.")


class OrderRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    items = OrderItemRequestSerializer(many=True, allow_empty=False, max_length=100)
    shipping = ShippingRequestSerializer()
    metadata = MetadataField(required=False)


class RefundRequestCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(max_length=255)


class ShipRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    tracking_number = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )


class CartLineSerializer(serializers.Serializer):  # type: ignore[type-arg]
    product = serializers.IntegerField(source="product.pk")
    title = serializers.CharField(source="product.title")
    seller = serializers.CharField(source="product.seller.slug")
    unit_price_minor = serializers.IntegerField(source="product.price_minor")
    quantity = serializers.IntegerField()
    subtotal_minor = serializers.IntegerField()
    available = serializers.BooleanField(help_text="Still for sale, with enough stock.")


class CartGroupSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The cart's items in one currency: one checkout."""

    currency = serializers.CharField()
    subtotal_minor = serializers.IntegerField(help_text="The lines at today's prices.")
    service_fee_minor = serializers.IntegerField(
        help_text="The platform's service fee in force for the currency (0: none)."
    )
    total_minor = serializers.IntegerField(help_text="What the order would cost: lines + fee.")
    can_check_out = serializers.BooleanField()
    lines = CartLineSerializer(many=True)


class CartItemRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    product = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    quantity = StrictIntegerField(min_value=0, max_value=settings.ORDER_MAX_QUANTITY)


class CartCheckoutRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    shipping = ShippingRequestSerializer()
    metadata = MetadataField(required=False)
