"""What the payments admin pages share: read-only admins, actions that need a reason,
and the amount column.

Money is never edited in a change form, not even by a superuser: every field is
read-only, the change form refuses a POST (403), and nothing is added or deleted.
Money moves only through admin actions, each a thin caller of one service that
records who, when and why.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.currencies import format_amount


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows that nobody edits in the admin: they are written by services only.

    The change page is a view page showing every field; a POST to it is refused.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Every field, also those Django leaves off a form (``auto_now_add`` dates), so
        the page shows them all and a form built here could change none of them."""
        declared = list(super().get_readonly_fields(request, obj))
        model_fields = [field.name for field in self.opts.concrete_fields if not field.primary_key]
        return (*declared, *(name for name in model_fields if name not in declared))


class AmountColumn:
    """An ``amount`` column showing ``amount_minor`` in its currency."""

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, obj: Any) -> str:
        return format_amount(obj.amount_minor, obj.currency)


class ReasonActionForm(ActionForm):
    """The changelist's action bar with a reason box, kept with each row changed.

    Not required here (an action without a reason, such as approving a payout, would
    otherwise fail as "no action selected"); actions that need it call
    ``ReadOnlyWithActionsAdmin.action_reason``.
    """

    reason = forms.CharField(
        required=False,
        max_length=255,
        label="Reason (kept in the history of each row changed)",
    )


class ReadOnlyWithActionsAdmin(ReadOnlyAdmin):
    """Read-only forms (even for a superuser), but operators with the model's change
    permission may run the admin actions, which call the services.

    Django runs a changelist action for anyone who may view the list unless the
    action names permissions; here every action needs the ``operate`` permission.
    """

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """The model's change permission, which the forms no longer use: it now means
        "may run this model's actions"."""
        codename = get_permission_codename("change", self.opts)
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        if not self.has_operate_permission(request):
            return {}
        return super().get_actions(request)

    def action_reason(self, request: HttpRequest, missing: str) -> str | None:
        """The reason typed in the action bar, or None after telling the operator
        ``missing`` (what to give) and that nothing changed."""
        reason = str(request.POST.get("reason", "")).strip()
        if reason:
            return reason
        self.message_user(request, f"{missing} Nothing was changed.", level=messages.ERROR)
        return None


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    # Relations every row shows: joined once, not fetched row by row.
    select_related: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.select_related) if self.select_related else queryset

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
