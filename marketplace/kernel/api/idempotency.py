"""``Idempotency-Key`` for API POSTs that create or move money, as Stripe does it.

The same key from the same user, within 24 hours, replays the first answer
(status and body, with ``Idempotent-Replayed: true``) without running the
request again. The same key with another request (method, path, query string or
body; the body compared as canonical JSON, so reordered keys or other spacing is
the same request) is refused with 422. While the first request is still running,
a second one gets 409.

Answers of a request that ran are kept, as Stripe keeps them once an endpoint
started: successes, business refusals (402 declined, 409 conflict or state) and
server errors (5xx: the work may have committed before the failure, so running it
again could place a second order; the replay says so, and the client checks
before retrying with a new key). Two kinds of answer free the key instead: a
request refused before it changed anything (400 invalid, 401, 403, 404, 429), so
the corrected retry runs; and a temporary processor failure (503), which the
payment services make safe to retry with the same key (their processor calls
carry idempotency keys of their own). A key whose request died without an answer
(a killed worker) is freed after :data:`IN_PROGRESS_TIMEOUT`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.kernel.api.errors import PROBLEM_CONTENT_TYPE, problem
from marketplace.kernel.api.locations import CreatedLocationMixin
from marketplace.kernel.errors import UpstreamUnavailable
from marketplace.kernel.models import IdempotencyRecord

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
IN_PROGRESS_TIMEOUT = timedelta(seconds=30 + 60)
"""A claimed key with no answer after this long belongs to a request that died: the
web server kills a request after 30 s (gunicorn ``--timeout 30``, Procfile and
deploy/), plus a minute's margin. The next request with the key then runs."""


def _stored(status_code: int, *, retry_safe: bool) -> bool:
    """Whether an answer is kept for replay: the request ran (2xx, 3xx), was a
    business refusal (402, 409) or failed part-way (5xx), unless the failure is one
    the service made safe to retry. A refusal before anything changed (400, 401,
    403, 404, 429) frees its key for the corrected retry."""
    if status_code >= 500:
        return not retry_safe
    return status_code < 400 or status_code in (402, 409)


def _canonical_body(body: bytes) -> bytes:
    """JSON with sorted keys and no whitespace; a body that is not JSON as it came."""
    if not body:
        return b""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # the parser refuses it (400)
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fingerprint(request: Request) -> str:
    query = urlencode(sorted(parse_qsl(request.META.get("QUERY_STRING", ""), True)))
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, query, _canonical_body(request.body)):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def idempotency_keys_expire(*, now: Any = None) -> int:
    """Forget keys older than 24 hours; returns how many."""
    cutoff = (now or timezone.now()) - TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


class IdempotentMixin(CreatedLocationMixin):
    """For a DRF view: POSTs with an ``Idempotency-Key`` header run at most once.

    The key is claimed in its own transaction before the view runs, so two
    concurrent requests with one key never both run it. Every write view has this
    mixin, so it also brings :class:`CreatedLocationMixin` (a 201's ``Location``).
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The key is checked once DRF has authenticated the user: see initial().
        key = request.headers.get(HEADER, "").strip()
        self._idempotency_key = key if request.method == "POST" else ""
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        key = getattr(self, "_idempotency_key", "")
        if not key or not request.user.is_authenticated:
            return
        self._idempotency_record = None
        if len(key) > MAX_KEY_LENGTH:
            raise _Answer(
                problem(400, f"{HEADER} is at most {MAX_KEY_LENGTH} characters.", "invalid")
            )
        fingerprint = _fingerprint(request)
        now = timezone.now()
        mine = IdempotencyRecord.objects.filter(user=request.user, key=key)
        mine.filter(created_at__lt=now - TTL).delete()
        # A claim with no answer, older than any request can run: its request died.
        mine.filter(response_status__isnull=True, created_at__lt=now - IN_PROGRESS_TIMEOUT).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=request.user,
                    key=key,
                    method=request.method or "",
                    path=request.path[:255],
                    request_hash=fingerprint,
                )
        except IntegrityError:
            earlier = mine.first()
            if earlier is None:  # freed meanwhile (its request failed): ask for a retry
                raise _Answer(_in_progress()) from None
            if earlier.request_hash != fingerprint:
                raise _Answer(
                    problem(
                        422,
                        f"This {HEADER} was used for a different request.",
                        "idempotency_key_reused",
                    )
                ) from None
            if earlier.response_status is None:
                raise _Answer(_in_progress()) from None
            replay = Response(
                earlier.response_body,
                status=earlier.response_status,
                content_type=PROBLEM_CONTENT_TYPE if earlier.response_status >= 400 else None,
            )
            replay["Idempotent-Replayed"] = "true"
            raise _Answer(replay) from None
        self._idempotency_record = record

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Answer):
            return exc.response
        self._idempotency_retry_safe = isinstance(exc, UpstreamUnavailable)
        try:
            return super().handle_exception(exc)  # type: ignore[misc,no-any-return]
        except Exception:
            # An error no handler answered: the key stays claimed without an answer
            # (the work may have committed), so it is freed only after the timeout.
            self._idempotency_record = None
            raise

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Any:
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            self._idempotency_record = None
            retry_safe = getattr(self, "_idempotency_retry_safe", False)
            if not _stored(response.status_code, retry_safe=retry_safe):
                record.delete()
            else:
                record.response_status = response.status_code
                record.response_body = response.data
                try:
                    record.save(update_fields=["response_status", "response_body"])
                except DatabaseError:
                    # The database went away (the answer is a 503 about it): the key
                    # stays claimed without an answer and is freed after the timeout.
                    logger.warning("Idempotency-Key answer not recorded", exc_info=True)
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


def _in_progress() -> Response:
    response = problem(
        409, f"A request with this {HEADER} is still being processed.", "idempotency_in_progress"
    )
    response["Retry-After"] = "1"
    return response


class _Answer(Exception):
    """An answer decided before the view ran (a replay or a refusal)."""

    def __init__(self, response: Response) -> None:
        super().__init__("idempotency answer")
        self.response = response
