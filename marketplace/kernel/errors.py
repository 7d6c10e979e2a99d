"""The application's own errors, shared by every app.

Services raise these; each entry point turns them into its own kind of answer
in one place (a form or page message for the site, a problem response for the
API). Input validation of a single form field still uses Django's
``ValidationError``.
"""

from __future__ import annotations


class ApplicationError(Exception):
    """Something a caller asked for that cannot be done; the message is for people.

    ``param`` names the request field at fault, when one is (the API returns it).
    """

    code = "error"
    param: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param

    def __str__(self) -> str:
        return self.message


class InvalidRequest(ApplicationError):
    """The request itself is wrong (bad quantity, mixed currencies, too large a refund)."""

    code = "invalid"


class NotFound(ApplicationError):
    code = "not_found"


class Conflict(ApplicationError):
    """The request was fine but the world changed under it (sold out, already taken)."""

    code = "conflict"


class OutOfStock(Conflict):
    code = "out_of_stock"


class InvalidState(ApplicationError):
    """The object is not in a state that allows this (refund of an unpaid order)."""

    code = "invalid_state"


class UpstreamError(Exception):
    """A service we call (a payment processor) refused, or could not do, what we asked.

    The message can be shown; ``code`` is the service's own; ``param`` names the field
    of our request at fault, where the caller knows one. The API answers 402 with it.
    ``payments.processors.base.ProcessorError`` is the payment processor's kind.
    """

    def __init__(
        self, message: str, *, code: str = "", request_id: str = "", param: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.param = param


class UpstreamUnavailable(UpstreamError):
    """The service is rate limiting us, timed out or is down: the same request, with the
    same idempotency key, may be tried again later. The API answers 503 with
    ``Retry-After`` and keeps no idempotent answer for it."""
