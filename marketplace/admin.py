from django.contrib import admin
from django.utils.html import format_html

from marketplace.models import Category, Product
from marketplace.services.products import products_set_active_bulk
from payments.currencies import format_amount


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent", "position")
    list_filter = ("parent",)
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
    list_filter = ("is_active", "is_featured", "currency", "category", "created_at")
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
