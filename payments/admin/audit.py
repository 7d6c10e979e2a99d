"""The audit trail in the operator console: a history table on every audited object's
page, the trail's own list, and the change form that asks why (commission rules and
payout policies save through a service that records each changed field).

Changes are shown in the operator's words: field labels, amounts in their currency,
basis points as percentages; a minor unit never appears.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.db import models
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from marketplace.kernel.currencies import format_amount
from payments.admin.base import NoEditing, ReadOnlyAdmin
from payments.ledger.audit import audit_history
from payments.models import AuditRecord


def _label(model: type[models.Model] | None, name: str) -> str:
    if model is not None:
        names = {field.name for field in model._meta.get_fields()}
        if name in names:
            label = str(getattr(model._meta.get_field(name), "verbose_name", name))
            # Values are shown as money and percentages: the stored unit is no label.
            label = UNIT_WORDS.sub("", label).strip()
            return label[:1].upper() + label[1:]
    # A field since removed keeps its name.
    label = name.replace("_minor", "").replace("_", " ")
    return label[:1].upper() + label[1:]


def _shown(name: str, value: Any, currency: str) -> str:
    """One recorded value as an operator reads it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name.endswith("_bps") and isinstance(value, int):
        return f"{value / 100:g}%"
    if name.endswith("_minor") and isinstance(value, int):
        if currency:
            return format_amount(value, currency)
        # Only a rule without a currency has amounts without one, and those are zero.
        return "none" if value == 0 else f"{value:,}"
    if isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
        # Amounts per currency (minimums, approval thresholds).
        return ", ".join(format_amount(v, str(k)) for k, v in sorted(value.items())) or "none"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        with contextlib.suppress(ValueError):  # a date and time, recorded as text
            return localtime(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M")
    return str(value)


UNIT_WORDS = re.compile(r"\s*\((?:minor units|basis points)\)|\s+in minor units", re.I)
# Kept for the services (a confirmation page's one-time key), not for people.
HIDDEN_CHANGES = frozenset({"confirmation"})
# Ids of the objects an action made (a refund): shown as "Refund #12".
LINKED_CHANGES = frozenset({"refund"})


def changes_text(record: AuditRecord, currency: str = "") -> str:
    """``label before → after`` for each field the record changed; amounts in the
    record's currency if it changed, else ``currency`` (the object's)."""
    model = record.content_type.model_class()
    if "currency" in record.changes:
        currency = str(record.changes["currency"][1] or record.changes["currency"][0] or "")
    parts = []
    for name, (before, after) in record.changes.items():
        if name in HIDDEN_CHANGES:
            continue
        if name in LINKED_CHANGES and after:
            parts.append(f"{_label(model, name)} #{after}")
        elif before is None:
            parts.append(f"{_label(model, name)} {_shown(name, after, currency)}")
        else:
            parts.append(
                f"{_label(model, name)} {_shown(name, before, currency)} → "
                f"{_shown(name, after, currency)}"
            )
    return "; ".join(parts)


class HistoryInline(NoEditing, GenericTabularInline):
    """The object's history (who, when, through what, what, why), newest first, read
    from the one audit trail. Add it to an admin's ``inlines``."""

    model = AuditRecord
    extra = 0
    can_delete = False
    fields = ("at", "actor_name", "via", "action", "what_changed", "reason")
    readonly_fields = fields
    verbose_name = "history entry"
    verbose_name_plural = "history (who, when, what changed, why)"

    currency = ""

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("actor", "content_type")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # Inline instances are made per request: the page's object gives the currency.
        self.currency = str(getattr(obj, "currency", "") or "")
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="who")
    def actor_name(self, record: AuditRecord) -> str:
        return str(record.actor) if record.actor_id else "the system"

    @admin.display(description="what changed")
    def what_changed(self, record: AuditRecord) -> str:
        return changes_text(record, self.currency) or "—"


def history_table(obj: models.Model | None) -> str:
    """The object's history as a table, for a read-only field on a page whose form is
    saved (an inline there would need formset data in every POST)."""
    if obj is None or obj.pk is None:
        return "—"
    records = list(audit_history(obj))
    if not records:
        return "Nothing recorded yet."
    currency = str(getattr(obj, "currency", "") or "")
    rows = format_html_join(
        "\n",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                date_format(localtime(record.at), "DATETIME_FORMAT"),
                str(record.actor) if record.actor_id else "the system",
                record.via,
                record.action.replace("_", " "),
                changes_text(record, currency) or "—",
                record.reason or "—",
            )
            for record in records
        ),
    )
    return format_html(
        '<table class="history"><thead><tr><th scope="col">When</th><th scope="col">Who</th>'
        '<th scope="col">Via</th><th scope="col">What</th><th scope="col">What changed</th>'
        '<th scope="col">Why</th></tr></thead><tbody>{}</tbody></table>',
        rows,
    )


class ReasonForm(forms.ModelForm):  # type: ignore[type-arg]
    change_reason = forms.CharField(
        max_length=255,
        label="Reason for this change",
        help_text="Kept in the history below with your name; it cannot be edited.",
    )


class AuditedSettingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves through ``save_service`` with who and why; shows the setting's history.

    Dates are one labelled ``datetime-local`` input instead of Django's split
    date/time boxes, which axe-core finds unlabelled.
    """

    form = ReasonForm

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.DateTimeField):
            return forms.DateTimeField(
                label=str(db_field.verbose_name).capitalize(),
                required=not db_field.blank,
                help_text=db_field.help_text,
                widget=forms.DateTimeInput(
                    attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"
                ),
                input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"],
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_service(self, obj: Any, by: Any, reason: str) -> Any:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.save_service(obj, request.user, form.cleaned_data["change_reason"])

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        fieldsets.append(("Why, and history", {"fields": ("change_reason", "history")}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "history")

    @admin.display(description="history (who, when, what changed, why)")
    def history(self, obj: Any) -> str:
        return history_table(obj)


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    """Every recorded change and action, searchable; each row links to its object."""

    list_display = ("at", "object_link", "action", "actor", "via", "what_changed", "reason")
    list_filter = ("content_type", "action", "via", "at")
    search_fields = ("reason", "actor__email", "=object_id", "action")
    list_select_related = ("actor", "content_type")
    date_hierarchy = "at"
    # The stored changes, in the operator's words (money, percentages).
    shown_instead = {"changes": "what_changed"}

    def get_queryset(self, request: HttpRequest) -> Any:
        # Each row's object, for its currency: one query per kind of object.
        return super().get_queryset(request).prefetch_related("target")

    @admin.display(description="object")
    def object_link(self, record: AuditRecord) -> str:
        label = f"{record.content_type.name} #{record.object_id}"
        try:
            url = reverse(
                f"admin:{record.content_type.app_label}_{record.content_type.model}_change",
                args=[record.object_id],
            )
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="what changed")
    def what_changed(self, record: AuditRecord) -> str:
        return changes_text(record, str(getattr(record.target, "currency", "") or "")) or "—"
