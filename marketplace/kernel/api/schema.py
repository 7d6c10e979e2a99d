"""drf-spectacular post-processing: the error responses and headers every operation has.

Every error is a problem (RFC 9457, the ``Problem`` component) and every operation
documents those it can give:

- 400 where the request has something to be wrong: query parameters, a body, or an
  ``Idempotency-Key`` header (every POST);
- 401, 403 (not allowed, or a session write without its CSRF token), 404 (not found
  or not yours; the catch-all), 406 and 429 (with ``Retry-After``) everywhere;
- 415 where there is a body;
- 409 (the state does not allow it) and 422 (an ``Idempotency-Key`` reused for
  another request) on writes.

Every response documents the ``Request-Id`` header. Integer query parameters are ids
(``?run=``, ``?order=``) or counts: 0 and below were schema-valid but refused with a
400, so they get ``minimum: 1`` where they had no bound.
"""

from __future__ import annotations

from typing import Any

from marketplace.kernel.api.errors import ERROR_CODES

PROBLEM = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {
            "type": "string",
            "description": "The code's documentation (the same as `doc_url`).",
            "example": "/api/v1/errors/#invalid_state",
        },
        "title": {"type": "string", "example": "Conflict"},
        "status": {"type": "integer", "example": 409},
        "detail": {"type": "string", "example": "A held payout cannot be held."},
        "code": {
            "type": "string",
            "description": "Machine-readable; the list with meanings is at `/api/v1/errors/`: "
            + ", ".join(ERROR_CODES)
            + ", and the payment processor's decline codes.",
            "example": "invalid_state",
        },
        "param": {
            "type": "string",
            "description": "The request field at fault, when there is one (for a validation "
            "error the first; nested as `items[0][quantity]`).",
            "example": "items[0][quantity]",
        },
        "errors": {
            "type": "object",
            "description": "For 400 validation errors: messages per field.",
            "additionalProperties": True,
        },
        "doc_url": {
            "type": "string",
            "description": "Where the code is explained.",
            "example": "/api/v1/errors/#invalid_state",
        },
        "request_id": {
            "type": "string",
            "description": "The answer's `Request-Id`: quote it when asking about a request.",
            "example": "req_5d0c9a2e41b7f3a86e1d0c47",
        },
    },
    "required": ["type", "title", "status", "detail", "code", "doc_url"],
}
ALWAYS = {
    "401": "No credentials, or they are not valid.",
    "403": "You may not do this (or a session write without its CSRF token).",
    "404": "Not found, or not yours.",
    "406": "The API answers JSON only.",
    "429": "Too many requests; retry after `Retry-After` seconds.",
}
BAD_REQUEST = {"400": "The request is not valid: `param` names the field, `errors` all of them."}
WITH_BODY = {"415": "The body must be `application/json`."}
WRITES = {
    "409": "The object's state does not allow this.",
    "422": "This Idempotency-Key was used for a different request.",
}
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Send the same key to retry safely: within 24 hours the first answer "
    "is replayed.",
}
REQUEST_ID_HEADER = {
    "Request-Id": {
        "description": "This request's id (yours, from `Request-Id` or `X-Request-Id`, or "
        "made here); also in the logs.",
        "schema": {"type": "string"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
}


def add_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            parameters = operation.setdefault("parameters", [])
            if method == "post":
                parameters.append(IDEMPOTENCY_HEADER)
            for parameter in parameters:
                _bound_integer_query(parameter)
            has_body = "requestBody" in operation
            codes = dict(ALWAYS)
            if has_body or any(p.get("in") in ("query", "header") for p in parameters):
                codes.update(BAD_REQUEST)
            if has_body:
                codes.update(WITH_BODY)
            if method in ("post", "put", "patch", "delete"):
                codes.update(WRITES)
            responses = operation["responses"]
            for code, description in codes.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/problem+json": {"schema": ref}},
                    },
                )
            for code, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.update(REQUEST_ID_HEADER)
                if code in ("429", "503"):
                    headers.update(RETRY_AFTER_HEADER)
    return result


def _bound_integer_query(parameter: dict[str, Any]) -> None:
    schema = parameter.get("schema", {})
    if parameter.get("in") == "query" and schema.get("type") == "integer":
        schema.setdefault("minimum", 1)
