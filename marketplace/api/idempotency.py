"""``Idempotency-Key`` for API POSTs that create or move money, as Stripe does it.

The same key from the same user, within 24 hours, replays the first answer
(status and body, with ``Idempotent-Replayed: true``) without running the
request again. The same key with another request (method, path, query string or
body; the body compared as canonical JSON, so reordered keys or other spacing is
the same request) is refused with 422. While the first request is still running,
a second one gets 409.

Only answers of a request that ran are kept: successes and business refusals
(402 declined, 409 conflict or state). A request refused before it changed
anything (400 invalid, 401, 403, 404, 429) and server errors (5xx) free the key, so
the corrected retry runs. A key whose request died without an answer (a killed
worker) is freed after :data:`IN_PROGRESS_TIMEOUT`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.errors import PROBLEM_CONTENT_TYPE, problem
from marketplace.api.locations import CreatedLocationMixin
from marketplace.models import IdempotencyRecord

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
IN_PROGRESS_TIMEOUT = timedelta(seconds=30 + 60)
"""A claimed key with no answer after this long belongs to a request that died: the
web server kills a request after 30 s (gunicorn ``--timeout 30``, Procfile and
deploy/), plus a minute's margin. The next request with the key then runs."""


def _stored(status_code: int) -> bool:
    """Whether an answer is kept for replay: the request ran (2xx, 3xx) or was a
    business refusal (402, 409). Anything else changed nothing or failed (400, 401,
    403, 404, 429, 5xx): its key is freed for the retry."""
    return status_code < 400 or status_code in (402, 409)


def _canonical_body(body: bytes) -> bytes:
    """JSON with sorted keys and no whitespace; a body that is not JSON as it came."""
    if not body:
        return b""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
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
        try:
            return super().handle_exception(exc)  # type: ignore[misc,no-any-return]
        except Exception:
            # A server error escapes: forget the key so a retry runs again.
            record = getattr(self, "_idempotency_record", None)
            if record is not None:
                self._idempotency_record = None
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Any:
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            self._idempotency_record = None
            if not _stored(response.status_code):
                record.delete()
            else:
                record.response_status = response.status_code
                record.response_body = response.data
                record.save(update_fields=["response_status", "response_body"])
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
