"""Readable, unique URL slugs."""

from django.db import models
from django.utils.text import slugify


def unique_slug(
    model: type[models.Model], text: str, *, field: str = "slug", max_length: int = 80
) -> str:
    """A slug made from ``text`` that no row of ``model`` uses yet ("mug", "mug-2", ...).

    This only picks a free name; the unique constraint on the column is what
    guarantees uniqueness when two requests pick the same name at once.
    """
    base = (slugify(text) or "item")[:max_length].strip("-") or "item"
    taken = set(
        model._default_manager.filter(**{f"{field}__startswith": base}).values_list(
            field, flat=True
        )
    )
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = f"{base[: max_length - len(suffix)]}{suffix}"
        if candidate not in taken:
            return candidate
        n += 1
