"""Retrying work that lost a lock conflict.

The money services lock rows in one order (``payments.ledger.locks``), so they do
not deadlock with each other; but PostgreSQL may still abort a transaction
that meets a lock held outside that order (an operator's manual SQL, a
migration) or a serialization failure. Background work that can meet one
retries it, from the start of its own transaction, rather than stopping
part-way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

# PostgreSQL's SQLSTATEs for "try the transaction again".
RETRYABLE = {"40P01": "deadlock detected", "40001": "serialization failure"}


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction may simply be run again."""
    return getattr(exc.__cause__, "sqlstate", None) in RETRYABLE  # psycopg 3


def retry_on_conflict(work: Callable[[], T], *, attempts: int = 5, pause: float = 0.05) -> T:
    """Run ``work`` (which opens its own transaction), again after a deadlock or a
    serialization failure, up to ``attempts`` times. Must not be called inside a
    transaction: the retry needs a fresh one."""
    if connection.in_atomic_block:
        return work()  # the caller's transaction decides; it cannot be retried from here
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            logger.warning("Retrying after a lock conflict (attempt %s): %s", attempt, exc)
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")
