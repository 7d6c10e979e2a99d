"""Stripe Connect adapter: separate charges and transfers through ``stripe.StripeClient``.

The only package that imports ``stripe``: ``client`` makes every SDK call (one per
method of ``StripeProcessor``), ``translate`` reads the SDK's objects into the
dataclasses of ``base.py`` (never an SDK object leaves), and ``errors`` turns the
SDK's errors into the errors of ``base.py`` in one place (``stripe_errors``).

- One PaymentIntent per order (``transfer_group``), one Transfer per seller
  (``source_transaction``, ``destination``), Express accounts on manual payouts,
  payouts created on the connected account (``Stripe-Account`` header).
- The API version is pinned, so a new SDK or a dashboard change cannot change
  the shape of what we read.
- Every mutating call sends the caller's idempotency key. The SDK retries
  connection errors, 409 and 5xx itself (``MAX_NETWORK_RETRIES``) with that same
  key; it never retries 429, which surfaces as ``TemporaryProcessorError`` for
  the caller's own (Celery) backoff.
- Amounts are integer minor units in and out. Currencies are upper-case ISO 4217
  codes on our side and lower-case on Stripe's.
"""

from payments.processors.stripe.client import STRIPE_API_VERSION, StripeProcessor

__all__ = ["STRIPE_API_VERSION", "StripeProcessor"]
