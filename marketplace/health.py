"""Is this web process able to serve? For load balancers and monitoring.

The database is required: without it no page works, so the instance is unhealthy.
The broker is not: orders, payments and webhooks are stored in the database first
and their tasks are queued again by the sweepers once the broker is back, so a
broker outage makes the instance *degraded* (still in rotation, but an alert).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import connection

BROKER_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Check:
    ok: bool
    ms: float
    error: str = ""


@dataclass(frozen=True)
class Health:
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.checks["database"].ok:
            return "fail"
        return "ok" if all(check.ok for check in self.checks.values()) else "degraded"


def health_check() -> Health:
    """The database (a round trip) and the Celery broker (a connection)."""
    return Health({"database": _timed(_database), "broker": _timed(_broker)})


def _timed(probe) -> Check:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure is the answer, reported by type only
        return Check(False, _ms(started), type(exc).__name__)
    return Check(True, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker(url: str | None = None) -> None:
    """Connect to the broker (``url``, else the configured one)."""
    from marketplace.celery import app

    with app.connection_for_write(
        url,
        connect_timeout=BROKER_TIMEOUT_SECONDS,
        transport_options={
            "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
            "socket_timeout": BROKER_TIMEOUT_SECONDS,
        },
    ) as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
