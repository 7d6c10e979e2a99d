"""``expand[]``: related objects in the same answer, as Stripe does.

    GET /api/v1/orders/12/                                → "seller_orders": [31, 32]
    GET /api/v1/orders/12/?expand[]=seller_orders         → "seller_orders": [{"id": 31, …}, …]
    GET /api/v1/orders/?expand[]=data.seller_orders       (lists also take the ``data.`` form)

A serializer declares the relation as an ``ExpandableList`` (ids unless expanded);
its view lists what can be expanded in ``expandable``: for each name, the
prefetch for ids only and the prefetch for whole objects. The view prefetches one
or the other, so a list costs the same number of queries whatever its length,
expanded or not. An unknown name is a 400 with ``param: "expand"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.db.models import Prefetch, QuerySet
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, serializers

PARAM = "expand[]"


class ExpandableList(serializers.Field):  # type: ignore[type-arg]
    """A to-many relation shown as its ids, or as objects when ``expand[]`` names it."""

    def __init__(
        self,
        serializer_class: type[serializers.BaseSerializer],
        *,
        id_attr: str = "pk",
        **kwargs: Any,  # type: ignore[type-arg]
    ) -> None:
        kwargs["read_only"] = True
        self.serializer_class = serializer_class
        self.id_attr = id_attr
        super().__init__(**kwargs)

    def to_representation(self, related: Any) -> Any:
        rows = related.all()
        if self.field_name in self.context.get("expand", ()):
            return self.serializer_class(rows, many=True, context=self.context).data
        return [getattr(row, self.id_attr) for row in rows]


class ExpandableListExtension(OpenApiSerializerFieldExtension):
    """In the schema: an array of ids or of the expanded objects."""

    target_class = ExpandableList

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        target: ExpandableList = self.target
        component = auto_schema.resolve_serializer(target.serializer_class, direction)
        return {
            "type": "array",
            "readOnly": True,
            "description": f"Ids; the objects with `expand[]={target.field_name}`.",
            "items": {"oneOf": [{"type": "integer"}, component.ref]},
        }


# name -> (prefetch for ids only, prefetch for the expanded objects)
Expansions = Mapping[str, tuple[Callable[[], Prefetch], Callable[[], Prefetch]]]


class ExpandMixin:
    """For a viewset: parses ``expand[]``, prefetches accordingly (``with_expansions``)
    and tells the serializers (context ``expand``)."""

    expandable: ClassVar[Expansions] = {}
    request: Any
    action: Any

    def expansions(self) -> frozenset[str]:
        if getattr(self, "swagger_fake_view", False) or self.request is None:
            return frozenset()
        cached = getattr(self.request, "_expansions", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        if "expand" in self.request.query_params:
            raise exceptions.ValidationError(
                {"expand": ["Name each expansion with expand[]=…, once per name."]}
            )
        names = set()
        for name in self.request.query_params.getlist(PARAM):
            if self.action == "list" and name.startswith("data."):
                name = name.removeprefix("data.")
            if name not in self.expandable:
                allowed = ", ".join(sorted(self.expandable)) or "nothing"
                raise exceptions.ValidationError(
                    {"expand": [f"Cannot expand {name!r} here; this can expand {allowed}."]}
                )
            names.add(name)
        expansions = frozenset(names)
        self.request._expansions = expansions
        return expansions

    def with_expansions(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        expand = self.expansions()
        return queryset.prefetch_related(
            *(full() if name in expand else ids() for name, (ids, full) in self.expandable.items())
        )

    def get_serializer_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_serializer_context()  # type: ignore[misc]
        context["expand"] = self.expansions()
        return context


def expand_parameter(*names: str) -> OpenApiParameter:
    """The ``expand[]`` query parameter with its allowed values, for ``extend_schema``."""
    return OpenApiParameter(
        name=PARAM,
        type={"type": "array", "items": {"type": "string", "enum": list(names)}},
        location=OpenApiParameter.QUERY,
        required=False,
        style="form",
        explode=True,
        description="Related objects to include whole instead of as ids.",
    )
