"""Payment processors: ``get_processor()`` returns the configured one.

``base`` is the contract every processor keeps (its operations, what they return and
the errors they raise); ``local`` simulates Stripe Connect in our database, so the
app runs with no keys and no network; ``stripe/`` is the adapter to Stripe Connect.

May import: ``payments.models`` (the local processor's tables) and the shared kernel.
Never the services that call processors (``collection``, ``payouts``, ``reporting``):
the local processor queues its events by task name.
"""

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
