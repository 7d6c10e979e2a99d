"""Stripe's errors as the errors of ``payments/processors/base.py``, in one place:
what is retried (rate limits, connection errors, 5xx, 409), what is a bug of ours
(an invalid request), what the customer is told (a declined card)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from payments.processors.base import (
    CardDeclined,
    InvalidProcessorRequest,
    ProcessorAuthenticationError,
    ProcessorError,
    TemporaryProcessorError,
)

# The adapter logs under one name, whichever of its modules speaks.
logger = logging.getLogger("payments.processors.stripe")


# --- Errors ---------------------------------------------------------------------------


@contextmanager
def stripe_errors(operation: str) -> Iterator[None]:
    """Turn the SDK's errors raised inside the block into the errors of ``base.py``."""
    try:
        yield
    except stripe.StripeError as exc:
        raise processor_error(exc, operation) from exc
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # An answer without a field we read: the request may have done its work, so
        # the caller retries with the same key and Stripe answers with the same object.
        logger.exception("Unexpected answer from Stripe to %s", operation)
        raise TemporaryProcessorError(
            f"Unexpected answer from Stripe to {operation}: {type(exc).__name__}",
            code="unexpected_response",
        ) from exc


def processor_error(exc: stripe.StripeError, operation: str) -> ProcessorError:
    request_id = exc.request_id or ""
    message = str(exc.user_message or "") or type(exc).__name__
    code = exc.code or ""

    if isinstance(exc, stripe.CardError):
        decline_code = (exc.error.decline_code if exc.error else None) or ""
        logger.info(
            "Stripe declined a card in %s: code=%s decline_code=%s request_id=%s",
            operation,
            code,
            decline_code,
            request_id,
        )
        return CardDeclined(message, code=decline_code or code, request_id=request_id)

    if isinstance(exc, stripe.InvalidRequestError | stripe.IdempotencyError):
        logger.error(
            "Stripe refused %s as invalid: %s (code=%s param=%s request_id=%s)",
            operation,
            message,
            code,
            exc.param if isinstance(exc, stripe.InvalidRequestError) else "",
            request_id,
        )
        if isinstance(exc, stripe.IdempotencyError):
            code = code or "idempotency_error"
        return InvalidProcessorRequest(message, code=code, request_id=request_id)

    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        logger.error(
            "Stripe refused our credentials in %s: %s (request_id=%s)",
            operation,
            message,
            request_id,
        )
        return ProcessorAuthenticationError(message, code=code, request_id=request_id)

    if isinstance(exc, stripe.RateLimitError):
        logger.warning("Stripe rate limited %s (request_id=%s)", operation, request_id)
        return TemporaryProcessorError(message, code=code or "rate_limit", request_id=request_id)

    if isinstance(exc, stripe.APIConnectionError):
        logger.warning("Could not reach Stripe for %s: %s", operation, message)
        return TemporaryProcessorError(
            message, code=code or "connection_error", request_id=request_id
        )

    status = exc.http_status
    if isinstance(exc, stripe.APIError) and (status is None or status >= 500 or status == 409):
        logger.warning(
            "Stripe failed %s with HTTP %s (request_id=%s)", operation, status, request_id
        )
        return TemporaryProcessorError(message, code=code or "api_error", request_id=request_id)

    logger.error(
        "Unexpected Stripe error in %s: %s %s (HTTP %s, request_id=%s)",
        operation,
        type(exc).__name__,
        message,
        status,
        request_id,
    )
    return ProcessorError(message, code=code, request_id=request_id)
