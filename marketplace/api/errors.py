"""Every API error as one JSON shape: RFC 9457 problem details with a machine code.

    {"type": "about:blank", "title": "Conflict", "status": 409,
     "detail": "Only 2 left of Blue Mug.", "code": "out_of_stock"}

Validation errors add ``errors``: field name to a list of messages
(``non_field_errors`` for the request as a whole). This module is the only
place that turns exceptions into API responses.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from marketplace.errors import ApplicationError, Conflict, InvalidRequest, InvalidState, NotFound
from marketplace.views.errors import RETRY_AFTER_SECONDS, UNAVAILABLE, database_unavailable
from payments.processors.base import ProcessorError, TemporaryProcessorError

logger = logging.getLogger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"

APPLICATION_STATUS: list[tuple[type[ApplicationError], int]] = [
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (InvalidState, status.HTTP_409_CONFLICT),
    (InvalidRequest, status.HTTP_400_BAD_REQUEST),
    (ApplicationError, status.HTTP_400_BAD_REQUEST),
]


def problem(
    status_code: int, detail: str, code: str, errors: dict[str, Any] | None = None
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status_code),
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _title(status_code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def _field_errors(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {
            "non_field_errors" if key == "__all__" else str(key): _messages(value)
            for key, value in detail.items()
        }
    return {"non_field_errors": _messages(detail)}


def _messages(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _messages(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return [str(item) for item in value]
        return [_messages(item) for item in value]
    return [str(value)]


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler: our errors, DRF's and Django's, as problem details."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )

    if isinstance(exc, ApplicationError):
        set_rollback()
        code = next(s for cls, s in APPLICATION_STATUS if isinstance(exc, cls))
        return problem(code, exc.message, exc.code)
    if database_unavailable(exc):
        set_rollback()
        response = problem(503, UNAVAILABLE, "unavailable")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, TemporaryProcessorError):
        set_rollback()
        response = problem(503, "The payment service is not answering; try again.", exc.code)
        response["Retry-After"] = "30"
        return response
    if isinstance(exc, ProcessorError):
        set_rollback()
        return problem(402, exc.message, exc.code)
    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return problem(400, "The request has invalid fields.", "invalid", _field_errors(exc.detail))
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = problem(exc.status_code, str(detail), str(exc.get_codes()))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        return response
    return None
