"""Durations in words for templates."""

from datetime import datetime, timedelta

from django import template
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def duration(value: timedelta) -> str:
    """A length of time in words, as Django says it elsewhere: "15 minutes", "1 hour"."""
    start = datetime(2000, 1, 1)
    return timesince(start, start + value)
