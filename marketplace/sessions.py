"""The session store where the cache is shared (Redis): Django's ``cached_db``.

A session is read from the cache, or from the database on a miss; written to the
database, then to the cache. One change: a cache that is down while a session is
read costs the request nothing but that query (``cached_db`` would raise on filling
the cache again). Deleting a session (logging out) still fails loudly when the cache
cannot forget it: a session the cache kept would stay signed in.
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore

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
