"""``Idempotency-Key`` for API POSTs that create or move money.

The same key from the same user, within 24 hours, replays the first answer
(status and body, with ``Idempotent-Replayed: true``) without running the
request again; the same key with another method, path or body is refused with
422. While the first request is still running, a second one gets 409. Server
errors are not kept, so the request can be retried with the same key.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.errors import PROBLEM_CONTENT_TYPE, problem
from marketplace.models import IdempotencyRecord

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, request.body or b""):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def idempotency_keys_expire(*, now: Any = None) -> int:
    """Forget keys older than 24 hours; returns how many."""
    cutoff = (now or timezone.now()) - TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


class IdempotentMixin:
    """For a DRF view: POSTs with an ``Idempotency-Key`` header run at most once.

    The key is claimed in its own transaction before the view runs, so two
    concurrent requests with one key never both run it.
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
        fresh_after = timezone.now() - TTL
        IdempotencyRecord.objects.filter(
            user=request.user, key=key, created_at__lt=fresh_after
        ).delete()
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
            earlier = IdempotencyRecord.objects.get(user=request.user, key=key)
            if earlier.request_hash != fingerprint:
                raise _Answer(
                    problem(
                        422,
                        f"This {HEADER} was used for a different request.",
                        "idempotency_key_reused",
                    )
                ) from None
            if earlier.response_status is None:
                raise _Answer(
                    problem(
                        409,
                        f"A request with this {HEADER} is still being processed.",
                        "idempotency_in_progress",
                    )
                ) from None
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
            if response.status_code >= 500:
                record.delete()
            else:
                record.response_status = response.status_code
                record.response_body = response.data
                record.save(update_fields=["response_status", "response_body"])
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


class _Answer(Exception):
    """An answer decided before the view ran (a replay or a refusal)."""

    def __init__(self, response: Response) -> None:
        super().__init__("idempotency answer")
        self.response = response
