"""Strict request fields: a JSON integer is an integer, not a string that looks like one.

DRF's ``IntegerField`` takes ``"2"``, ``"2.0"`` and ``2.0`` as 2. An API client that
sends a string where the schema says integer has a bug we should show it, not hide:
request serializers use :class:`StrictIntegerField`, which takes JSON integers only
(and a JSON number with no fraction, ``2.0``, which JSON Schema also counts as an
integer); ``"2"``, ``true`` and ``2.5`` are refused with a 400.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A JSON integer is required (not a string)."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class StrictIntegersMixin:
    """For a ``ModelSerializer`` that takes requests: its model's integer fields become
    :class:`StrictIntegerField`."""

    def build_standard_field(self, field_name: str, model_field: Any) -> Any:
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)  # type: ignore[misc]
        if field_class in (serializers.IntegerField, serializers.BigIntegerField):
            field_class = StrictIntegerField
        return field_class, field_kwargs


class SlugRefField(serializers.SlugRelatedField):  # type: ignore[type-arg]
    """DRF's ``SlugRelatedField`` that refuses a slug holding a NUL as one that names
    nothing (a 400): no slug holds one, and PostgreSQL refuses NUL in any text, so the
    look-up would otherwise be a 500."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", ""))
        return super().to_internal_value(data)
