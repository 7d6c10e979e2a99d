"""Query filters shared by the API's lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time, turned into UTC before it reaches the database:
    PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 and Python allow (a 500
    before), and a moment that leaves years 1-9999 in UTC is a clear 400."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(
                "Give a date and time between the years 1 and 9999.", code="invalid"
            ) from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``IsoDateTimeFilter`` whose value is compared in UTC."""

    field_class = UtcIsoDateTimeField
