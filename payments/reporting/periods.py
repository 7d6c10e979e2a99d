"""Days as instants: where a date range starts and ends in the site's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone


def day_start(day: date) -> datetime:
    """Midnight at the start of ``day``, in the site's time zone."""
    return datetime.combine(day, time.min, timezone.get_current_timezone())


def days_between(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """``[since, until)`` covering the days ``start`` to ``end``, both included; an open
    side stays None."""
    since = day_start(start) if start is not None else None
    until = day_start(end + timedelta(days=1)) if end is not None else None
    return since, until
