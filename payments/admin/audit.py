"""What commission-rule and payout-policy admins share: a required reason for every
change, saving through the services, and the change history on the page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from payments.admin.base import ReadOnlyAdmin
from payments.models import SettingChange


class ReasonForm(forms.ModelForm):  # type: ignore[type-arg]
    change_reason = forms.CharField(
        max_length=255,
        label="Reason for this change",
        help_text="Kept in the history below with your name; it cannot be edited.",
    )


class AuditedSettingAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves through ``save_service`` with who and why; shows the setting's history.

    Dates are one labelled ``datetime-local`` input and related rows are raw ids
    (a labelled text box with a lookup), instead of Django's split date/time
    boxes and select2 widgets, which axe-core finds unlabelled.
    """

    form = ReasonForm
    audit_target = ""

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        from django.db import models

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

    @admin.display(description="history")
    def history(self, obj: Any) -> str:
        if obj is None or obj.pk is None:
            return "—"
        changes = SettingChange.objects.filter(
            target=self.audit_target, target_id=obj.pk
        ).select_related("changed_by")
        return (
            format_html_join(
                "\n",
                "<div>{} by {} ({}): {} — <em>{}</em></div>",
                (
                    (
                        change.at.strftime("%Y-%m-%d %H:%M"),
                        change.changed_by or "the system",
                        change.via,
                        ", ".join(
                            f"{name} {before!r} → {after!r}"
                            for name, (before, after) in change.changes.items()
                        ),
                        change.reason or "no reason given",
                    )
                    for change in changes
                ),
            )
            or "No changes recorded."
        )


@admin.register(SettingChange)
class SettingChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "target", "target_id", "changed_by", "via", "reason")
    list_filter = ("target", "via", "at")
    search_fields = ("reason", "changed_by__email", "=target_id")
    list_select_related = ("changed_by",)
