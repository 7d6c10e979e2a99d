"""The last-resort error answers (``handler500``).

An exception no view handled ends here. When it is the database that failed (it is
restarting, unreachable, or out of connections) the request is retryable, so the
answer is a 503 with ``Retry-After`` rather than a 500: a page that says so for
people, a problem response for API clients and payment processors (which retry a
webhook on any non-2xx). Nothing here touches the database, and no traceback is
ever shown; the exception is logged by Django as usual.
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views.csrf import csrf_failure as django_csrf_failure

from marketplace.kernel.api.errors import ERROR_CODES, PROBLEM_CONTENT_TYPE, problem_body
from marketplace.kernel.unavailable import RETRY_AFTER_SECONDS, UNAVAILABLE, database_unavailable

# Paths whose clients read JSON: the API and the processors' webhooks.
MACHINE_PATHS = ("/api/", "/payments/webhooks/")


def _problem_response(status: int, detail: str, code: str) -> HttpResponse:
    return JsonResponse(
        problem_body(status, detail, code), status=status, content_type=PROBLEM_CONTENT_TYPE
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """500, or 503 when the database is unavailable; rendered without the database."""
    unavailable = database_unavailable(sys.exc_info()[1])
    status = 503 if unavailable else 500
    if request.path.startswith(MACHINE_PATHS):
        response = _problem_response(
            status,
            UNAVAILABLE if unavailable else "The request failed on our side; nothing was changed.",
            "unavailable" if unavailable else "server_error",
        )
    else:
        # No RequestContext: its context processors would query the database.
        template = "503.html" if unavailable else "500.html"
        response = HttpResponse(loader.get_template(template).render(), status=status)
    if unavailable:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a 403 problem (``csrf_failed``) under /api/, Django's
    page elsewhere. API clients should authenticate with a Bearer token, which needs
    no CSRF token."""
    if request.path.startswith(MACHINE_PATHS):
        return _problem_response(
            403,
            f"CSRF check failed ({reason}). Send an Authorization: Bearer token, or the "
            "CSRF token with a session.",
            "csrf_failed",
        )
    return django_csrf_failure(request, reason=reason)


def api_error_codes(request: HttpRequest) -> HttpResponse:
    """``/api/v1/errors/``: every error code with what it means; each problem's
    ``doc_url`` points at its code's anchor here."""
    codes = [(code, _code_spans(meaning)) for code, meaning in sorted(ERROR_CODES.items())]
    return render(request, "api/error_codes.html", {"codes": codes})


def _code_spans(text: str) -> str:
    """The meaning's `backticked` names as <code>, everything else escaped."""
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    parts = escape(text).split("`")
    return mark_safe(  # noqa: S308 - every part was escaped above
        "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    )
