"""The audit trail's two verbs: record an action on an object, and save a money setting
with each changed field recorded. Both write ``AuditRecord`` rows, which are never
edited; every history shown to an operator is read from them."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import QuerySet

from accounts.models import User
from payments.models import AuditRecord


def audit_record(
    *,
    target: models.Model,
    action: str,
    by: User | None,
    reason: str = "",
    via: str = AuditRecord.Via.CODE,
    changes: dict[str, list[Any]] | None = None,
) -> AuditRecord:
    """Record that ``by`` (None: the system) did ``action`` to ``target`` and why. Call it
    inside the transaction that does the action, so the record exists exactly when the
    action does."""
    return AuditRecord.objects.create(
        content_type=ContentType.objects.get_for_model(target, for_concrete_model=True),
        object_id=target.pk,
        action=action,
        actor=by,
        via=via,
        reason=reason.strip()[:255],
        changes=changes or {},
    )


def audit_history(target: models.Model) -> QuerySet[AuditRecord]:
    """The object's history, newest first, with who did it."""
    return AuditRecord.objects.filter(
        content_type=ContentType.objects.get_for_model(target, for_concrete_model=True),
        object_id=target.pk,
    ).select_related("actor", "content_type")


def _value(instance: models.Model, field: models.Field[Any, Any]) -> Any:
    value = field.value_from_object(instance)
    if isinstance(value, dict | list | int | str | bool) or value is None:
        return value
    return str(value)


@transaction.atomic
def audited_save(
    *,
    instance: models.Model,
    by: User | None,
    reason: str = "",
    via: str = AuditRecord.Via.CODE,
) -> models.Model:
    """Validate (the model's rules and constraints), save, and record each field that
    changed before and after: a new object is recorded as ``created``, an edit as
    ``changed``, and a save that changes nothing records nothing."""
    fields = [f for f in instance._meta.concrete_fields if not f.primary_key]
    before = None
    if instance.pk is not None:
        before = type(instance)._default_manager.select_for_update().filter(pk=instance.pk).first()
    instance.full_clean()
    instance.save()
    changes = {
        field.name: [None if before is None else _value(before, field), _value(instance, field)]
        for field in fields
        if before is None or _value(before, field) != _value(instance, field)
    }
    if changes:
        audit_record(
            target=instance,
            action="created" if before is None else "changed",
            by=by,
            reason=reason,
            via=via,
            changes=changes,
        )
    return instance
