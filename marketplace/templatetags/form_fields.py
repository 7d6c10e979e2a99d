"""Accessible form fields: an invalid field says so and points at its error."""

from django import template

register = template.Library()


@register.filter
def accessible(field):
    """Render a bound field with ``aria-invalid`` and ``aria-describedby`` set.

    The description names the error first (when there is one), then the help
    text, matching the ids that templates/includes/form.html gives them.
    """
    described_by = []
    if field.errors:
        described_by.append(f"{field.auto_id}_error")
    if field.help_text:
        described_by.append(f"{field.auto_id}_helptext")
    attrs = {"aria-describedby": " ".join(described_by)} if described_by else {}
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs=attrs)
