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
