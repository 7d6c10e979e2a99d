"""drf-spectacular post-processing: the error responses and headers every operation has.

Every operation can answer with a problem (RFC 9457): 400 bad input, 401 no
or bad credentials, 403 not allowed, 404 not found (or a page past the end),
429 throttled; writes can also answer 409 (the state does not allow it) and
422 (an ``Idempotency-Key`` reused for another request). POSTs document the
``Idempotency-Key`` request header.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Conflict"},
        "status": {"type": "integer", "example": 409},
        "detail": {"type": "string", "example": "A held payout cannot be held."},
        "code": {
            "type": "string",
            "description": "Machine-readable: invalid, not_found, conflict, out_of_stock, "
            "invalid_state, not_authenticated, authentication_failed, permission_denied, "
            "throttled, idempotency_key_reused, idempotency_in_progress, parse_error, …",
            "example": "invalid_state",
        },
        "errors": {
            "type": "object",
            "description": "For 400 validation errors: messages per field.",
            "additionalProperties": True,
        },
    },
    "required": ["type", "title", "status", "detail", "code"],
}
ALWAYS = {
    "400": "The request is not valid (see `errors`).",
    "401": "No credentials, or they are not valid.",
    "403": "You may not do this.",
    "404": "Not found, or not yours.",
    "429": "Too many requests; retry after `Retry-After` seconds.",
}
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


def add_problem_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            codes = dict(ALWAYS)
            if method in ("post", "put", "patch", "delete"):
                codes.update(WRITES)
            for code, description in codes.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/problem+json": {"schema": ref}},
                    },
                )
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
    return result
