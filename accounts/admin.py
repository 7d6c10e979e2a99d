from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from accounts.models import ApiToken, Seller, User
from accounts.tokens import api_token_revoke
from marketplace.kernel.currencies import format_amount
from marketplace.kernel.errors import ApplicationError
from payments.admin.audit import history_table
from payments.ledger.balances import SellerBalance, seller_balances
from payments.models import Dispute, LedgerEntry, Payout
from payments.payouts.freezes import seller_freeze, seller_unfreeze
from payments.payouts.planning import payout_reserves
from payments.payouts.policies import (
    FREEZE_HOLDS,
    PolicyBook,
    payout_policy_for,
    policy_text,
    seller_payout_totals,
)


class UserChangeFormByEmail(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


class UserCreationFormByEmail(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)


class SellerInline(admin.StackedInline):
    model = Seller
    extra = 0
    can_delete = False
    fields = ("display_name", "slug", "country", "default_currency", "payout_status")
    readonly_fields = ("payout_status",)


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


class FreezeForm(forms.Form):
    reason = forms.CharField(
        max_length=255,
        label="Reason (kept in the seller's history with your name)",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "Give a reason: it is kept in the seller's history."},
    )


RECENT_PAYOUTS = 10
RECENT_DISPUTES = 10
RECENT_ENTRIES = 20


def _changelist(model_name: str, app: str = "payments", **lookups: object) -> str:
    url = reverse(f"admin:{app}_{model_name}_changelist")
    return f"{url}?{urlencode(lookups)}" if lookups else url


def seller_overview(seller: Seller) -> dict:
    """What the seller's admin page shows above its form, read in a fixed number of
    queries whatever the seller's number of currencies, payouts and entries: balances
    and reserve per currency, the payout policy in effect, recent payouts, disputes
    and ledger entries."""
    from django.db.models import Sum

    book = PolicyBook.load([seller.pk])
    policy = book.for_seller(seller.pk)
    reserves = payout_reserves(book, [seller.pk], timezone.now())
    balances = seller_balances(seller=seller)
    rows = []
    for currency in sorted({seller.default_currency} | set(balances)):
        nothing = SellerBalance(currency, pending=0, available=0, in_transit=0, paid_out=0)
        balance = balances.get(currency, (nothing, 0))[0]
        rows.append(
            {
                "currency": currency,
                "available": format_amount(max(balance.available, 0), currency),
                "pending": format_amount(balance.pending, currency),
                "in_transit": format_amount(balance.in_transit, currency),
                "reserve": format_amount(reserves.get((seller.pk, currency), 0), currency),
                "debt": (
                    format_amount(-balance.available, currency) if balance.available < 0 else ""
                ),
            }
        )

    payouts = [
        {
            "url": reverse("admin:payments_payout_change", args=[payout.pk]),
            "label": f"#{payout.pk}",
            "created_at": payout.created_at,
            "amount": format_amount(payout.amount_minor, payout.currency),
            "status": payout.get_status_display(),
            "why": payout.failure_reason,
        }
        for payout in Payout.objects.filter(seller=seller).order_by("-created_at", "-id")[
            :RECENT_PAYOUTS
        ]
    ]
    # Filtered before it is summed: the sum is of this seller's lines only.
    disputes = [
        {
            "url": reverse("admin:payments_dispute_change", args=[dispute.pk]),
            "label": dispute.processor_dispute_id,
            "order": dispute.order_id,
            "opened_at": dispute.opened_at,
            "status": dispute.get_status_display(),
            "amount": format_amount(dispute.amount_minor, dispute.currency),
            "seller_part": format_amount(dispute.seller_part or 0, dispute.currency),
        }
        for dispute in Dispute.objects.filter(lines__order_line__seller_order__seller=seller)
        .annotate(seller_part=Sum("lines__seller_amount_minor"))
        .order_by("-opened_at", "-id")[:RECENT_DISPUTES]
    ]
    entries = [
        {
            "url": reverse("admin:payments_ledgertransaction_change", args=[entry.transaction_id]),
            "created_at": entry.created_at,
            "kind": entry.transaction.get_kind_display(),
            "description": entry.transaction.description,
            "account": entry.account.get_kind_display(),
            # Seller accounts are credited with negative amounts: shown from their side.
            "amount": format_amount(-entry.amount_minor, entry.currency),
        }
        for entry in LedgerEntry.objects.filter(account__seller=seller)
        .select_related("transaction", "account")
        .order_by("-created_at", "-id")[:RECENT_ENTRIES]
    ]
    # Its own page, the saved default's, or (a default not saved yet) the page to make one.
    if policy.pk:
        policy_url = reverse("admin:payments_payoutpolicy_change", args=[policy.pk])
    else:
        policy_url = reverse("admin:payments_payoutpolicy_add")
    return {
        "balances": rows,
        "policy": policy,
        "policy_is_own": bool(policy.seller_id),
        "policy_text": policy_text(policy),
        "policy_url": policy_url,
        "payouts": payouts,
        "payouts_url": _changelist("payout", seller__id__exact=seller.pk),
        "held_url": _changelist("payout", seller__id__exact=seller.pk, status__exact="held"),
        "disputes": disputes,
        "entries": entries,
        "entries_url": _changelist("ledgerentry", q=seller.display_name),
    }


@admin.register(Seller)
class SellerAdmin(admin.ModelAdmin):
    """A seller's page: what the platform owes them, the payout policy in effect, recent
    payouts, disputes and ledger entries, and their history, above the profile form;
    operators who may change payout policies freeze and unfreeze their payouts here,
    with a reason (``seller_freeze`` / ``seller_unfreeze``)."""

    change_form_template = "admin/accounts/seller/change_form.html"
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
    readonly_fields = ("created_at", "updated_at", "history")
    prepopulated_fields = {"slug": ("display_name",)}
    # Where a seller's money goes: set by onboarding at the processor and by the seller
    # on their own pages, never typed in here (an edit would redirect their payouts).
    payout_destination_fields = (
        "payout_account_id",
        "payout_status",
        "bank_account_holder",
        "bank_account_number",
        "bank_routing_code",
    )

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, *self.payout_destination_fields) if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        fields = [name for name in self.get_fields(request, obj) if name != "history"]
        if obj is None:
            return [(None, {"fields": fields})]
        return [(None, {"fields": fields}), ("History", {"fields": ("history",)})]

    @admin.display(description="who, when, what changed, why")
    def history(self, seller):

        return history_table(seller)

    def has_freeze_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_payoutpolicy")

    def get_urls(self):
        freeze = self.admin_site.admin_view(self.freeze_view)
        return [
            path(
                "<path:object_id>/freeze/",
                freeze,
                {"frozen": True},
                name="accounts_seller_freeze",
            ),
            path(
                "<path:object_id>/unfreeze/",
                freeze,
                {"frozen": False},
                name="accounts_seller_unfreeze",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            overview = seller_overview(obj)
            context = {
                **context,
                **overview,
                "can_freeze": self.has_freeze_permission(request),
                "freeze_url": reverse("admin:accounts_seller_freeze", args=[obj.pk]),
                "unfreeze_url": reverse("admin:accounts_seller_unfreeze", args=[obj.pk]),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def freeze_view(self, request, object_id, frozen):
        """Freeze or unfreeze the seller's payouts: GET shows what it does and asks why;
        POST calls the one service and goes back to the seller's page."""

        seller = self.get_object(request, unquote(object_id))
        if seller is None:
            raise Http404("No such seller.")
        if not (
            self.has_view_or_change_permission(request, seller)
            and self.has_freeze_permission(request)
        ):
            raise PermissionDenied
        form = FreezeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            service = seller_freeze if frozen else seller_unfreeze
            try:
                outcome = service(
                    seller=seller, by=request.user, reason=form.cleaned_data["reason"], via="admin"
                )
            except ApplicationError as exc:
                form.add_error(None, str(exc))
            else:
                level = messages.SUCCESS if outcome.changed else messages.WARNING
                self.message_user(request, outcome.message, level)
                return redirect("admin:accounts_seller_change", seller.pk)
        policy = payout_policy_for(seller)
        verb = "Freeze" if frozen else "Unfreeze"
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} payouts to {seller}",
            "opts": self.opts,
            "original": seller,
            "seller": seller,
            "form": form,
            "frozen": frozen,
            "policy": policy,
            "already": policy.frozen == frozen,
            "to_hold": seller_payout_totals(seller=seller, statuses=FREEZE_HOLDS),
            "held": seller_payout_totals(seller=seller, statuses=[Payout.Status.HELD]),
            "sending": seller_payout_totals(seller=seller, statuses=[Payout.Status.SENDING]),
            "held_url": _changelist("payout", seller__id__exact=seller.pk, status__exact="held"),
        }
        return TemplateResponse(request, "admin/accounts/seller/freeze.html", context)


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

        for token in queryset:
            api_token_revoke(user=token.user, token_id=token.pk)
        self.message_user(request, f"{queryset.count()} token(s) revoked.")
