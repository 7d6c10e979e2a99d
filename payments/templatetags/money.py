"""Template filters for showing money."""

from django import template

from marketplace.kernel.currencies import format_amount, to_major_units

register = template.Library()


@register.simple_tag
def money(minor: int, currency: str) -> str:
    """``{% money product.price_minor product.currency %}`` → "$12.50"."""
    return format_amount(minor, currency)


@register.filter
def major_units(minor: int, currency: str) -> str:
    """The plain decimal figure, for form inputs: ``1250|major_units:"USD"`` → "12.50"."""
    return str(to_major_units(minor, currency))
