"""Test set-up shared by the whole suite.

Tests run on SQLite and the embedded broker by default. Tests marked
``postgres``, ``redis`` or ``browser`` need that service; without it they are
skipped, unless ``REQUIRE_SERVICES=1`` (CI), where a missing service fails
the run instead.
"""

from __future__ import annotations

import os
import shutil
from functools import cache

import pytest
from django.conf import settings as django_settings
from hypothesis import settings as hypothesis_settings

# Hypothesis: 100 examples a property locally, more in CI.
hypothesis_settings.register_profile("ci", max_examples=300)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
CHROMIUM = "/usr/bin/chromium"


@cache
def postgres_available() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


@cache
def redis_available() -> bool:
    url = django_settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        return False
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


@cache
def chromium_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return shutil.which(CHROMIUM) is not None


@cache
def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


@cache
def postgres_server_available() -> bool:
    binaries = all(shutil.which(name) for name in ("initdb", "pg_ctl"))
    return binaries and (os.geteuid() != 0 or shutil.which("runuser") is not None)


SERVICE_MARKERS = {
    "postgres": (postgres_available, "needs PostgreSQL (set DATABASE_URL=postgres://...)"),
    "redis": (redis_available, "needs a Redis broker (set CELERY_BROKER_URL=redis://...)"),
    "browser": (chromium_available, f"needs Playwright and Chromium at {CHROMIUM}"),
    "redis_server": (redis_server_available, "needs redis-server to start a Redis of its own"),
    "postgres_server": (
        postgres_server_available,
        "needs PostgreSQL's initdb and pg_ctl to start a cluster of its own",
    ),
}


@pytest.hookimpl(trylast=True)  # after -m / -k deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """With REQUIRE_SERVICES=1, stop before running anything if a service that a
    selected test needs is missing."""
    if not REQUIRE_SERVICES:
        return
    needed = {name for item in items for name in SERVICE_MARKERS if item.get_closest_marker(name)}
    missing = [
        SERVICE_MARKERS[name][1] for name in sorted(needed) if not SERVICE_MARKERS[name][0]()
    ]
    if missing:
        raise pytest.UsageError("REQUIRE_SERVICES=1 but: " + "; ".join(missing))


def pytest_runtest_setup(item):
    for name, (available, reason) in SERVICE_MARKERS.items():
        if item.get_closest_marker(name) and not available():
            if REQUIRE_SERVICES:
                pytest.fail(f"{reason} (REQUIRE_SERVICES=1)", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    """Fast password hashing, and uploads written to a temporary folder."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"


pytest_plugins = ["tests.fixtures"]
