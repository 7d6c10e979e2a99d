"""One pagination for every API list, in Stripe's shape: a keyset cursor on the primary key.

    GET /api/v1/orders/?limit=2&starting_after=41
    {"object": "list", "url": "/api/v1/orders/", "has_more": true, "data": [{"id": 40, …}, …]}

Rows are newest first (primary key descending). ``limit`` is 1-100 (default 25);
``starting_after=<id>`` gives the page after that object, ``ending_before=<id>``
the page before it (not both). The cursor is the object itself, not an offset,
so rows added or removed between two requests neither repeat nor go missing.
One query reads the page (``limit + 1`` rows: the extra row says ``has_more``);
at most one more finds the cursor object, which must be in the caller's own
list (someone else's id is ``resource_missing``, as is an id that does not exist).

A view sets ``cursor_id_field`` when its public id is not the primary key (the
events' UUID); the keyset stays on the primary key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.kernel.errors import InvalidRequest

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_BIGINT = 2**63 - 1
_INTEGER = re.compile(r"[1-9][0-9]{0,18}")


def _invalid(param: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({param: [message]})


def _one_value(request: Request, param: str) -> str | None:
    values = request.query_params.getlist(param)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(param, f"Give {param} once.")
    return str(values[0])


def parse_limit(request: Request) -> int:
    """``limit``: a whole number from 1 to 100; absent means 25. Anything else is refused."""
    raw = _one_value(request, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not _INTEGER.fullmatch(raw) or int(raw) > MAX_LIMIT:
        raise _invalid("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


def _id_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    if name == "pk":
        pk = model._meta.pk
        assert pk is not None
        return pk
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:  # a view's mistake, not the client's
        raise AssertionError(f"{model.__name__} has no field {name!r}") from None
    assert isinstance(field, models.Field)
    return field


def _parse_id(field: models.Field[Any, Any], param: str, raw: str) -> Any:
    if isinstance(field, models.AutoField | models.IntegerField):
        if not _INTEGER.fullmatch(raw) or int(raw) > MAX_BIGINT:
            raise _invalid(param, f"{param} must be the id of an object in this list.")
        return int(raw)
    try:
        value = field.to_python(raw)
    except DjangoValidationError:
        raise _invalid(param, f"{param} must be the id of an object in this list.") from None
    if value in (None, ""):
        raise _invalid(param, f"{param} must be the id of an object in this list.")
    return value


class CursorPagination(BasePagination):
    """Stripe's list: ``limit``, ``starting_after``, ``ending_before``; see the module docstring."""

    def paginate_queryset(
        self, queryset: models.QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        limit = parse_limit(request)
        after = _one_value(request, "starting_after")
        before = _one_value(request, "ending_before")
        if after is not None and before is not None:
            raise _invalid("ending_before", "Give starting_after or ending_before, not both.")
        queryset = queryset.order_by("-pk")
        if after is None and before is None:
            rows = list(queryset[: limit + 1])
            self.has_more = len(rows) > limit
            return rows[:limit]
        param, raw = ("starting_after", after) if after is not None else ("ending_before", before)
        assert raw is not None
        cursor = self._cursor_pk(queryset, view, param, raw)
        if after is not None:
            rows = list(queryset.filter(pk__lt=cursor)[: limit + 1])
            self.has_more = len(rows) > limit
            return rows[:limit]
        rows = list(queryset.filter(pk__gt=cursor).order_by("pk")[: limit + 1])
        self.has_more = len(rows) > limit
        return rows[:limit][::-1]

    def _cursor_pk(self, queryset: models.QuerySet[Any], view: Any, param: str, raw: str) -> Any:
        """The primary key of the cursor object, looked up in the caller's own list
        (for a resource's list, its queryset before filters, so a filter does not hide it)."""
        id_field = getattr(view, "cursor_id_field", "pk")
        field = _id_field(queryset.model, id_field)
        value = _parse_id(field, param, raw)
        # A resource's list: its unfiltered queryset. A list action (an endpoint's
        # deliveries) pages rows of another model: the queryset it passed.
        scope = queryset
        if view is not None and getattr(view, "action", None) == "list":
            scope = view.get_queryset()
        scope = scope.filter(**{id_field: value}).prefetch_related(None).order_by()
        pk = scope.values_list("pk", flat=True).first()
        if pk is None:
            raise InvalidRequest(
                f"No such object in this list: {raw}.", code="resource_missing", param=param
            )
        return pk

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return Response(
            {
                "object": "list",
                "url": self.request.path,
                "has_more": self.has_more,
                "data": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["object", "url", "has_more", "data"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "url": {"type": "string", "example": "/api/v1/orders/"},
                "has_more": {
                    "type": "boolean",
                    "description": "More rows beyond this page, in the direction of travel.",
                },
                "data": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        id_field = getattr(view, "cursor_id_field", "pk")
        if id_field == "pk":
            id_schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT}
        else:
            id_schema = {"type": "string"}
            model = getattr(getattr(view, "queryset", None), "model", None)
            if model is not None and isinstance(_id_field(model, id_field), models.UUIDField):
                id_schema["format"] = "uuid"
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"How many objects, 1 to {MAX_LIMIT}.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                },
            },
            {
                "name": "starting_after",
                "required": False,
                "in": "query",
                "description": "The id of an object in this list: the page after it (older).",
                "schema": id_schema,
            },
            {
                "name": "ending_before",
                "required": False,
                "in": "query",
                "description": "The id of an object in this list: the page before it (newer). "
                "Not with starting_after.",
                "schema": id_schema,
            },
        ]
