"""The session store where the cache is shared (Redis): Django's ``cached_db``.

A session is read from the cache, or from the database on a miss; written to the
database, then to the cache. One change: a cache that is down while a session is
read, or while a new session key is checked, costs the request nothing but the
database's query (``cached_db`` would raise). Forgetting a signed-in session (logging
out, or its key changed) still fails loudly when the cache cannot forget it: a
session the cache kept would stay signed in. A visitor's session left in the cache
when they sign in (its key changes) is only logged: it signs no one in.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.db import SessionStore as DBStore

logger = logging.getLogger(__name__)


class SessionStore(CachedDBStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            logger.warning("Session cache unavailable; reading the session from the database")
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))
        except Exception:
            logger.warning("Session cache unavailable; the session was not cached")
        return data

    def exists(self, session_key: str) -> bool:
        try:
            return bool(super().exists(session_key))
        except Exception:
            logger.warning("Session cache unavailable; checking the session key in the database")
            return bool(DBStore.exists(self, session_key))

    def flush(self) -> None:
        self._signing_out = True  # what is deleted now may be signed in: fail loudly
        try:
            super().flush()
        finally:
            self._signing_out = False

    def delete(self, session_key: str | None = None) -> None:
        # A visitor's: its data was read (the key is changing) and signs no one in.
        data: dict[str, Any] | None = getattr(self, "_session_cache", None)
        signed_in = getattr(self, "_signing_out", False) or data is None or SESSION_KEY in data
        try:
            super().delete(session_key)
        except Exception:
            if signed_in:
                raise
            logger.warning("Session cache unavailable; a visitor's old session stays cached")
