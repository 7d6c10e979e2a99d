"""Accessible form fields: an invalid field says so and points at its error."""

from django import template

register = template.Library()


@register.filter
def accessible(field):
    """Render a bound field; with errors it gets ``aria-invalid`` and ``aria-describedby``."""
    attrs = {}
    if field.errors:
        attrs = {"aria-invalid": "true", "aria-describedby": f"{field.auto_id}_error"}
    elif field.help_text:
        attrs = {"aria-describedby": f"{field.auto_id}_helptext"}
    return field.as_widget(attrs=attrs)
