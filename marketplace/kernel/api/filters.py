"""Query filters shared by the API's lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers


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


BOOLEAN_VALUES = ("true", "false")


def query_values(request: Any) -> dict[str, str]:
    """The query string as a plain dict for a query serializer: an empty value then
    reaches the field (and is refused, ``?start=``) instead of counting as left out,
    as DRF does for form-like input."""
    return dict(request.query_params.items())


class StrictDjangoFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing an empty filter (``?created_after=``,
    ``?status=``) with a 400 naming it, where django-filter would ignore it and
    list everything: a client that sends an empty value has lost the one it meant.
    A boolean filter takes ``true`` or ``false`` only (django-filter reads any
    other word as one of them, or ignores it). Leave the parameter out to not
    filter. (The site's own filter forms keep ignoring empty fields.)"""

    def get_filterset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            for name, declared in filterset.filters.items():
                values = request.query_params.getlist(name)
                if values and any(not value.strip() for value in values):
                    raise serializers.ValidationError(
                        {name: ["Give a value, or leave the parameter out."]}
                    )
                if isinstance(declared, django_filters.BooleanFilter) and any(
                    value not in BOOLEAN_VALUES for value in values
                ):
                    raise serializers.ValidationError({name: ["Give true or false."]})
        return filterset
