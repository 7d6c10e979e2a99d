"""API rate limits that fail open.

The counters live in the shared cache (``CACHE_URL``, Redis in production). If that
cache is down, refusing every API call would turn a cache outage into an API outage,
so the limit is skipped (and logged) until the cache is back: the limits protect
capacity; authentication and permissions, which never depend on the cache, protect
the data.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

CACHE_ERRORS = (RedisError, OSError)


class _FailOpen:
    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except CACHE_ERRORS as exc:
            logger.warning("API rate limit skipped: the cache is unavailable (%s)", exc)
            return True


class AnonRateThrottleFailOpen(_FailOpen, AnonRateThrottle):
    """DRF's ``AnonRateThrottle`` (by client address), open while the cache is down."""


class UserRateThrottleFailOpen(_FailOpen, UserRateThrottle):
    """DRF's ``UserRateThrottle`` (by user), open while the cache is down."""
