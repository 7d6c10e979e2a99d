from django.contrib import admin, messages
from django.utils.html import format_html

from marketplace.models import Category, DeferredTask, Order, OrderLine, Product, SellerOrder
from marketplace.services.products import products_set_active_bulk
from marketplace.task_queue import deferred_tasks_send
from payments.admin.base import ReadOnlyAdmin, ReadOnlyWithActionsAdmin
from payments.currencies import format_amount


class CategoryListFilter(admin.RelatedFieldListFilter):
    """Categories by their full name ("Books › Fiction"), read in one query."""

    def field_choices(self, field, request, model_admin):
        return [
            (category.pk, str(category))
            for category in Category.objects.select_related("parent").order_by(
                "parent__name", "position", "name"
            )
        ]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent", "position")
    list_filter = (("parent", CategoryListFilter),)
    list_editable = ("position",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("parent",)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "seller",
        "category",
        "price",
        "stock",
        "is_active",
        "is_featured",
        "created_at",
    )
    list_filter = (
        "is_active",
        "is_featured",
        "currency",
        ("category", CategoryListFilter),
        "created_at",
    )
    list_editable = ("is_featured",)
    search_fields = ("title", "slug", "description", "seller__display_name", "seller__slug")
    list_select_related = ("seller", "category", "category__parent")
    autocomplete_fields = ("seller",)
    readonly_fields = ("created_at", "updated_at", "image_preview")
    date_hierarchy = "created_at"
    actions = ("list_products", "unlist_products")
    fieldsets = (
        (None, {"fields": ("seller", "title", "slug", "category", "description")}),
        ("Price and stock", {"fields": ("price_minor", "currency", "stock")}),
        ("Visibility", {"fields": ("is_active", "is_featured")}),
        ("Image", {"fields": ("image", "image_preview")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="price", ordering="price_minor")
    def price(self, obj: Product) -> str:
        return format_amount(obj.price_minor, obj.currency)

    @admin.display(description="preview")
    def image_preview(self, obj: Product) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:160px">', obj.image.url)

    @admin.action(description="List selected products in the shop", permissions=["change"])
    def list_products(self, request, queryset):
        updated = products_set_active_bulk(products=queryset, active=True)
        self.message_user(request, f"{updated} product(s) listed.")

    @admin.action(description="Hide selected products from the shop", permissions=["change"])
    def unlist_products(self, request, queryset):
        updated = products_set_active_bulk(products=queryset, active=False)
        self.message_user(request, f"{updated} product(s) hidden.")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = (
        "title",
        "quantity",
        "unit_price_minor",
        "gross_minor",
        "commission_minor",
        "seller_share_minor",
        "refunded_minor",
        "rule_percentage_bps",
        "rule_fixed_fee_minor",
        "commission_rule",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related(
                "commission_rule__product",
                "commission_rule__seller",
                "commission_rule__category__parent",
            )
        )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class SellerOrderInline(admin.TabularInline):
    model = SellerOrder
    extra = 0
    can_delete = False
    fields = (
        "seller",
        "status",
        "gross_minor",
        "commission_minor",
        "seller_share_minor",
        "refunded_minor",
        "released_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("seller")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Orders are written by the order, payment and refund services; here they are read:
    every field is read-only, nothing is added or deleted, even by a superuser."""

    list_display = (
        "__str__",
        "customer",
        "status",
        "total",
        "commission",
        "refunded",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "customer__email", "seller_orders__seller__display_name")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    inlines = [SellerOrderInline, OrderLineInline]

    @admin.display(description="total", ordering="total_minor")
    def total(self, order: Order) -> str:
        return format_amount(order.total_minor, order.currency)

    @admin.display(description="commission", ordering="commission_minor")
    def commission(self, order: Order) -> str:
        return format_amount(order.commission_minor, order.currency)

    @admin.display(description="refunded", ordering="refunded_minor")
    def refunded(self, order: Order) -> str:
        return format_amount(order.refunded_minor, order.currency)


@admin.register(DeferredTask)
class DeferredTaskAdmin(ReadOnlyWithActionsAdmin):
    """Tasks the broker refused while it was down; sent again every minute by beat.
    Rows that stay here mean the broker is still down (see /healthz)."""

    list_display = ("task", "args", "attempts", "error", "created_at")
    list_filter = ("task",)
    date_hierarchy = "created_at"
    actions = ["send_now"]

    def has_delete_permission(self, request, obj=None):
        # A row naming a task that no longer exists can only be removed by hand.
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.action(description="Queue the selected tasks again now", permissions=["operate"])
    def send_now(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        sent = deferred_tasks_send(pks=pks)
        level = messages.SUCCESS if sent == len(pks) else messages.WARNING
        self.message_user(
            request, f"Queued {sent} of {len(pks)}; the rest wait for the broker.", level
        )
