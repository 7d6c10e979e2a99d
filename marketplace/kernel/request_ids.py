"""A request id on every answer and every log line of its request.

The id comes from the client (or the proxy in front) in ``Request-Id`` or
``X-Request-Id`` when it is sane (1-128 letters, digits, ``_``, ``-``, ``.``, ``:``),
or is made here (``req_`` and 24 hex digits). Every response carries it in
``Request-Id``, problem details carry it as ``request_id``, and every log record
made while the request runs has it as ``%(request_id)s`` (``-`` outside requests),
so an integrator quoting the id leads to the log lines of that request. The id is
forgotten when Django signals ``request_finished``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

HEADER = "Request-Id"
INCOMING_HEADERS = ("Request-Id", "X-Request-Id")
SANE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

_current: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    """The id of the request being answered, or "" outside a request."""
    return _current.get()


def request_id_new() -> str:
    return f"req_{secrets.token_hex(12)}"


def _incoming(request: HttpRequest) -> str:
    for name in INCOMING_HEADERS:
        value = request.headers.get(name, "").strip()
        if SANE.fullmatch(value):
            return value
    return ""


class RequestIdMiddleware:
    """First in ``MIDDLEWARE``, so every answer, even a redirect or an error page of
    another middleware, carries the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _incoming(request) or request_id_new()
        request.request_id = request_id  # type: ignore[attr-defined]
        # Kept until the request is finished, not only while the middleware runs:
        # Django logs a 4xx ("Not Found: ...") after the middleware has answered.
        _current.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _forget(**kwargs: object) -> None:
    _current.set("")


request_finished.connect(_forget, dispatch_uid="marketplace.kernel.request_ids.forget")


class RequestIdLogFilter(logging.Filter):
    """Gives each record ``request_id`` (for the log format); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get() or "-"
        return True
