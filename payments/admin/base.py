"""What the payments admin pages share: read-only admins, actions that need a reason,
and the amount column.

Money is never edited in a change form, not even by a superuser: every field is
read-only, the change form refuses a POST (403), and nothing is added or deleted.
Money moves only through admin actions, each a thin caller of one service that
records who, when and why.

An operator never reads a minor unit: a read-only page shows each ``*_minor`` field
as money in the row's currency (labelled without "minor") and each ``*_bps`` field as
a percentage, whatever the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_permission_codename
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from marketplace.kernel.currencies import format_amount

MONEY_SUFFIX = "_minor"
PERCENT_SUFFIX = "_bps"
# Where a row without a currency of its own finds one, in this order (then any other
# relation to a row with a currency, then one step further).
CURRENCY_SOURCES = ("order", "payout", "account", "refund", "dispute", "seller_order")
# Words of a stored unit, left out of a label: "amount minor", "fee (minor units)".
UNIT_WORDS = re.compile(r"\s*\((?:in )?(?:minor units|basis points)\)|\b(?:minor|bps)\b", re.I)


def percent_text(basis_points: int) -> str:
    """Basis points as a percentage for people: "10%", "12.5%", "0.01%"."""
    return f"{(Decimal(basis_points) / 100).normalize():f}%"


def row_currency(obj: Any, depth: int = 2) -> str:
    """The currency of a row's amounts: its own ``currency`` field or, failing that, the
    currency of a related row (its order, payout, account, refund, dispute...)."""
    opts = obj._meta
    names = {field.name for field in opts.concrete_fields}
    own = str(obj.currency or "") if "currency" in names else ""
    if own:
        return own
    if depth == 0:
        return ""
    relations = [
        field
        for field in opts.concrete_fields
        if field.is_relation and (field.many_to_one or field.one_to_one)
    ]
    relations.sort(
        key=lambda field: (
            CURRENCY_SOURCES.index(field.name) if field.name in CURRENCY_SOURCES else 99
        )
    )
    for field in relations:
        if getattr(obj, field.attname, None) is None:
            continue
        related = getattr(obj, field.name, None)
        if isinstance(related, models.Model):
            currency = row_currency(related, depth - 1)
            if currency:
                return currency
    return ""


def shown_label(field: models.Field[Any, Any]) -> str:
    """A field's label without its stored unit: "amount", "clawed back", "rolling reserve"."""
    label = UNIT_WORDS.sub("", str(field.verbose_name))
    return re.sub(r"\s+", " ", label).strip() or field.name


def money_display(field: models.Field[Any, Any]) -> Callable[[Any], str | None]:
    """A read-only column or field showing ``field`` (minor units) as money."""

    @admin.display(description=shown_label(field), ordering=field.name)
    def show(obj: Any) -> str | None:
        value = getattr(obj, field.attname)
        if value is None:
            return None  # the admin's "-"
        currency = row_currency(obj)
        if currency:
            return format_amount(value, currency)
        # Only rules for every currency have amounts without one, and those are zero.
        return "none" if value == 0 else f"{value:,} (currency unknown)"

    return show


def percent_display(field: models.Field[Any, Any]) -> Callable[[Any], str | None]:
    """A read-only column or field showing ``field`` (basis points) as a percentage."""

    @admin.display(description=shown_label(field), ordering=field.name)
    def show(obj: Any) -> str | None:
        value = getattr(obj, field.attname)
        return None if value is None else percent_text(value)

    return show


class NoEditing:
    """Rows written by services only: nobody adds, changes or deletes them in the admin
    (for model admins and inlines alike)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(NoEditing, admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows that nobody edits in the admin: they are written by services only.

    The change page is a view page showing every field; a POST to it is refused.
    Amounts (``*_minor``) are shown as money and basis points (``*_bps``) as
    percentages, by a display of the admin's own that sorts by the field (such as
    ``AmountColumn.amount``) or else one made here; the raw field is never shown.
    """

    # Other stored fields an admin shows by a display of its own, e.g. a JSON of
    # changes by a sentence: {"changes": "what_changed"}.
    shown_instead: dict[str, str] = {}

    def __init__(self, model: type[models.Model], admin_site: Any) -> None:
        super().__init__(model, admin_site)
        # Stored field name -> the name of the display shown in its place.
        self.shown_as: dict[str, str] = dict(self.shown_instead)
        # Display name -> the help text of the field it shows.
        self.shown_help: dict[str, str] = {}
        taken = {field.name for field in model._meta.get_fields()}
        for field in model._meta.concrete_fields:
            if field.name in self.shown_as:
                continue
            if field.name.endswith(MONEY_SUFFIX):
                make, suffix = money_display, MONEY_SUFFIX
            elif field.name.endswith(PERCENT_SUFFIX):
                make, suffix = percent_display, PERCENT_SUFFIX
            else:
                continue
            name = self._own_display(field.name)
            if not name:
                name = field.name.removesuffix(suffix)
                if name in taken or hasattr(self, name):
                    name = f"{name}_shown"
                setattr(self, name, make(field))
            self.shown_as[field.name] = name
            if field.help_text:
                self.shown_help[name] = str(field.help_text)

    def _own_display(self, field_name: str) -> str:
        """The name of a display this admin declares for ``field_name`` (one that
        sorts by it, e.g. ``amount`` for ``amount_minor``), or ""."""
        for cls in type(self).__mro__:
            for name, value in vars(cls).items():
                if callable(value) and getattr(value, "admin_order_field", None) == field_name:
                    return name
        return ""

    def _shown(self, names: Iterable[Any]) -> list[Any]:
        """``names`` with each stored amount or basis points swapped for its display,
        once each (rows of a fieldset, tuples, are swapped inside)."""
        shown: list[Any] = []
        for name in names:
            if isinstance(name, list | tuple):
                name = tuple(self._shown(name))
            elif isinstance(name, str):
                name = self.shown_as.get(name, name)
            if name not in shown:
                shown.append(name)
        return shown

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Every field, also those Django leaves off a form (``auto_now_add`` dates), so
        the page shows them all and a form built here could change none of them;
        amounts and basis points as their displays."""
        declared = list(super().get_readonly_fields(request, obj))
        model_fields = [field.name for field in self.opts.concrete_fields if not field.primary_key]
        return tuple(self._shown([*declared, *model_fields]))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        """The stored amounts are shown by their displays, never as form fields."""
        excluded = super().get_exclude(request, obj)
        if not self.shown_as:
            return excluded
        return (*(excluded or ()), *self.shown_as)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """The displays keep the help text of the field they show."""
        if self.shown_help:
            kwargs.setdefault("help_texts", self.shown_help)
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self._shown(super().get_fields(request, obj))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            (title, {**options, "fields": self._shown(options.get("fields", ()))})
            for title, options in super().get_fieldsets(request, obj)
        ]

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._shown(super().get_list_display(request))


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


class ReadOnlyInline(NoEditing, admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    # Relations every row shows: joined once, not fetched row by row.
    select_related: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.select_related) if self.select_related else queryset
