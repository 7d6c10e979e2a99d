"""Payment processors: ``get_processor()`` returns the configured one."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from payments.processors.base import PaymentProcessor


@cache
def _build(name: str) -> PaymentProcessor:
    if name == "stripe":
        from payments.processors.stripe import StripeProcessor

        return StripeProcessor.from_settings()
    from payments.processors.local import LocalProcessor

    return LocalProcessor()


def get_processor(name: str | None = None) -> PaymentProcessor:
    """The processor named in ``PAYMENTS_PROCESSOR`` (or ``name``)."""
    return _build(name or settings.PAYMENTS_PROCESSOR)
