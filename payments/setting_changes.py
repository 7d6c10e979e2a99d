"""Saving money settings with their audit trail: every change of a commission rule or a
payout policy is validated, saved and recorded (who, when, via what, why, and each
field before and after) in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from accounts.models import User
from payments.models import SettingChange


def _value(instance: models.Model, field: models.Field[Any, Any]) -> Any:
    value = field.value_from_object(instance)
    if isinstance(value, dict | list | int | str | bool) or value is None:
        return value
    return str(value)


@transaction.atomic
def setting_save(
    *,
    instance: models.Model,
    target: str,
    by: User | None,
    reason: str = "",
    via: str = "code",
) -> models.Model:
    """Validate (the model's rules and constraints), save, and record what changed."""
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
        SettingChange.objects.create(
            target=target,
            target_id=instance.pk,
            changed_by=by,
            via=via,
            reason=reason.strip()[:255],
            changes=changes,
        )
    return instance
