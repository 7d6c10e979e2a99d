"""Every API error as one JSON shape: RFC 9457 problem details with a machine code.

    {"type": "/api/v1/errors/#out_of_stock", "title": "Conflict", "status": 409,
     "detail": "Only 2 left of Blue Mug.", "code": "out_of_stock", "param": "items",
     "doc_url": "/api/v1/errors/#out_of_stock", "request_id": "req_3f9c…"}

``param`` names the request field at fault when there is one (for a validation
error, the first field at fault, as Stripe does; nested fields as
``items[0][quantity]``); validation errors add ``errors``: field name to a list of
messages (``non_field_errors`` for the request as a whole). ``doc_url`` (also the
problem ``type``) is the code's entry in the list of codes served at
``/api/v1/errors/`` (docs/api.md, "Errors"). ``request_id`` is the ``Request-Id``
header of the answer. This module is the only place that turns exceptions into
API responses; the catch-all 404, CSRF failures and last-resort 500s outside DRF
use :func:`problem_body` too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from marketplace.kernel.errors import (
    ApplicationError,
    Conflict,
    InvalidRequest,
    InvalidState,
    NotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from marketplace.kernel.unavailable import RETRY_AFTER_SECONDS, UNAVAILABLE, database_unavailable

logger = logging.getLogger(__name__)
PROBLEM_CONTENT_TYPE = "application/problem+json"
SERVER_ERROR = "The request failed on our side; nothing was changed."

APPLICATION_STATUS: list[tuple[type[ApplicationError], int]] = [
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (InvalidState, status.HTTP_409_CONFLICT),
    (InvalidRequest, status.HTTP_400_BAD_REQUEST),
    (ApplicationError, status.HTTP_400_BAD_REQUEST),
]


ERROR_DOCS_PATH = "/api/v1/errors/"
# The codes an API client can meet, with what they mean (served at ERROR_DOCS_PATH;
# docs/api.md, "Errors"). Processors' codes (card_declined, …) pass through as given.
ERROR_CODES: dict[str, str] = {
    "invalid": "A field is not valid: `param` names the first, `errors` lists them all.",
    "parse_error": "The body is not valid JSON.",
    "not_authenticated": "No credentials were sent.",
    "authentication_failed": "The credentials are not valid (or the token was revoked).",
    "permission_denied": "These credentials may not do this.",
    "csrf_failed": "A session-authenticated write without its CSRF token; "
    "API clients should send an `Authorization: Bearer` token instead.",
    "not_found": "No such object (or not yours), or no such endpoint.",
    "method_not_allowed": "The endpoint does not accept this HTTP method.",
    "not_acceptable": "The API answers only `application/json` "
    "(`application/problem+json` for errors).",
    "unsupported_media_type": "Send the body as `application/json`.",
    "conflict": "The request was fine but the world changed under it.",
    "out_of_stock": "Fewer units are left than were asked for.",
    "invalid_state": "The object is not in a state that allows this.",
    "idempotency_key_reused": "This `Idempotency-Key` was used for a different request "
    "(method, path, query or body).",
    "idempotency_in_progress": "A request with this `Idempotency-Key` is still running; "
    "retry later.",
    "throttled": "Too many requests: retry after `Retry-After` seconds.",
    "resource_missing": "A cursor (`starting_after`, `ending_before`) that is not the id "
    "of an object in this list (or not yours).",
    "invalid_metadata": "`metadata` outside its limits: 50 keys of at most 40 characters "
    "(no [ or ]), string values of at most 500; `param` names the key at fault.",
    "webhook_address_refused": "A webhook endpoint's URL that webhooks may not be sent "
    "to: not https://, credentials in it, or a host on an address that is not public.",
    "webhook_host_unresolvable": "A webhook endpoint's host name that does not resolve.",
    "card_declined": "The card was declined.",
    "invalid_number": "Headless checkout with the local processor: not one of its test "
    "cards (`param: card_number`).",
    "payment_intent_authentication_failure": "The customer refused the payment's "
    "confirmation step (3-D Secure): the attempt is failed; start a new one.",
    "server_error": "The request failed on our side; quote the `request_id`.",
    "unavailable": "The service is briefly unavailable: retry after `Retry-After` seconds "
    "(with the same `Idempotency-Key` for a POST).",
}


def doc_url(code: str) -> str:
    """The stable address of ``code``'s documentation."""
    return f"{ERROR_DOCS_PATH}#{code}"


def problem_body(
    status_code: int,
    detail: str,
    code: str,
    *,
    param: str | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem details of an error (the request id is added by the middleware's
    context: see :mod:`marketplace.kernel.request_ids`)."""
    from marketplace.kernel.request_ids import current_request_id

    body: dict[str, Any] = {
        "type": doc_url(code),
        "title": _title(status_code),
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if param:
        body["param"] = param
    if errors:
        body["errors"] = errors
    body["doc_url"] = doc_url(code)
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    return body


def problem(
    status_code: int,
    detail: str,
    code: str,
    errors: dict[str, Any] | None = None,
    *,
    param: str | None = None,
) -> Response:
    body = problem_body(status_code, detail, code, param=param, errors=errors)
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _title(status_code: int) -> str:
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


def _first_param(detail: Any) -> str | None:
    """The first field at fault in DRF's error detail, named as Stripe does:
    ``quantity``, ``items[0][quantity]``; None when the request as a whole is at fault."""
    path = _error_path(detail) if isinstance(detail, dict) else None
    if not path:
        return None
    return str(path[0]) + "".join(f"[{part}]" for part in path[1:])


def _error_path(detail: Any) -> list[Any] | None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__") or not value:
                continue
            return [key, *(_error_path(value) or [])]
        return None
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list) and item:
                return [index, *(_error_path(item) or [])]
    return []


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
        return problem(code, exc.message, exc.code, param=exc.param)
    if database_unavailable(exc):
        set_rollback()
        response = problem(503, UNAVAILABLE, "unavailable")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, UpstreamUnavailable):
        set_rollback()
        response = problem(503, "The payment service is not answering; try again.", exc.code)
        response["Retry-After"] = "30"
        return response
    if isinstance(exc, UpstreamError):
        set_rollback()
        return problem(402, exc.message, exc.code, param=exc.param or None)
    if isinstance(exc, exceptions.ValidationError):
        set_rollback()
        return problem(
            400,
            "The request has invalid fields.",
            "invalid",
            _field_errors(exc.detail),
            param=_first_param(exc.detail),
        )
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = str(exc.get_codes())
        if isinstance(exc, exceptions.PermissionDenied) and detail.startswith("CSRF Failed"):
            # DRF's SessionAuthentication refuses a session write without its token.
            code = "csrf_failed"
        response = problem(exc.status_code, str(detail), code)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        return response
    # Anything else is a bug: a 500 problem (not Django's HTML page, even with DEBUG
    # on), logged with its traceback and the request id that the answer carries.
    set_rollback()
    request = context.get("request")
    logger.error(
        "Unhandled exception in the API: %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc_info=exc,
    )
    return problem(500, SERVER_ERROR, "server_error")
