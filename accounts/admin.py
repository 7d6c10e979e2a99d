from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import ApiToken, Seller, User
from payments.models import PayoutPolicy


class UserChangeFormByEmail(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class UserCreationFormByEmail(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)


class PayoutPolicyInline(admin.StackedInline):
    """The seller's own payout policy (none: the platform default applies)."""

    model = PayoutPolicy
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name = "own payout policy (none: the platform default applies)"
    fields = ("method", "schedule", "hold_days", "reserve_bps", "frozen", "frozen_reason")
    readonly_fields = fields
    # Changed on its own page (Payout policies), where every change needs a reason.


class SellerInline(admin.StackedInline):
    model = Seller
    extra = 0
    can_delete = False
    fields = ("display_name", "slug", "country", "default_currency", "payout_status")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeFormByEmail
    add_form = UserCreationFormByEmail
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "full_name")
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("full_name",)}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    inlines = [SellerInline]

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser hands out roles: an operator must not be able to
        # make anyone (themselves included) staff or superuser.
        fields = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ("is_staff", "is_superuser", "groups", "user_permissions")
        return fields


@admin.register(Seller)
class SellerAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "slug",
        "user",
        "country",
        "default_currency",
        "payout_status",
        "created_at",
    )
    list_filter = ("payout_status", "default_currency", "country")
    search_fields = ("display_name", "slug", "user__email", "payout_account_id")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = ("balances", "created_at", "updated_at")
    prepopulated_fields = {"slug": ("display_name",)}
    inlines = [PayoutPolicyInline]

    @admin.display(description="balances")
    def balances(self, seller):
        """Pending, available, in transit and paid out per currency (from the ledger)."""
        from django.utils.html import format_html_join

        from payments.balances import seller_balance, seller_currencies
        from payments.currencies import format_amount

        if seller.pk is None:
            return "—"
        rows = []
        for currency in seller_currencies(seller):
            b = seller_balance(seller=seller, currency=currency)
            rows.append(
                (
                    currency,
                    format_amount(b.pending, currency),
                    format_amount(b.available, currency),
                    format_amount(b.in_transit, currency),
                    format_amount(b.paid_out, currency),
                )
            )
        return format_html_join(
            "\n",
            "<div>{}: pending {}, available {}, in transit {}, paid out {}</div>",
            rows,
        )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made by their owners on their account page; here they can only be
    seen and revoked (a leaked token, a user who left)."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__email", "prefix")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("secret_hash",)
    actions = ("revoke",)

    def has_add_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        from accounts.tokens import api_token_revoke

        for token in queryset:
            api_token_revoke(user=token.user, token_id=token.pk)
        self.message_user(request, f"{queryset.count()} token(s) revoked.")
