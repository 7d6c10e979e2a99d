"""Test set-up shared by the whole suite.

Tests run on SQLite and the embedded broker by default. Tests marked
``postgres``, ``redis`` or ``browser`` need that service; without it they are
skipped, unless ``REQUIRE_SERVICES=1`` (CI), where a missing service fails
the run instead.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from dataclasses import dataclass, field
from functools import cache

import pytest
import pytest_socket
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


# --- Network guard: tests never leave the machine ---------------------------------
#
# pytest-socket (pinned) blocks every connection but loopback and Unix sockets,
# in the test's process and its threads (the live server, in-process workers);
# ``--force-enable-socket`` or ``@pytest.mark.enable_socket`` lifts it for a run or
# a test, ``--allow-hosts=...`` replaces the list. On top of it, ``network_guard``
# refuses DNS lookups of names (use ``fake_dns`` from tests/receivers.py), logs
# every connection a test attempts, and fails a test that tried to leave even if
# the code under test swallowed the error. Subprocesses (the Celery worker test,
# Chromium) are not covered: they only reach the services on 127.0.0.1.

ALLOWED_HOSTS = "127.0.0.0/8,::1/128,localhost"
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Before pytest-socket reads its options: loopback only, unless the command line
    chose otherwise."""
    if config.option.allow_hosts is None:
        config.option.allow_hosts = ALLOWED_HOSTS
    config.option.allow_unix_socket = True


class NetworkGuardError(RuntimeError):
    """A test tried to look up a name in the DNS."""


@dataclass
class NetworkLog:
    """What the current test tried: every connection (``(family, address)``) and
    every attempt the guard refused."""

    connections: list[tuple[int, object]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def hosts(self) -> list[str]:
        return [str(address[0]) for family, address in self.connections if family != socket.AF_UNIX]

    def take_blocked(self) -> list[str]:
        """For tests of the guard itself: the refused attempts, forgotten."""
        taken, self.blocked[:] = list(self.blocked), []
        return taken


def _is_local_name(host) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True  # an address needs no DNS
    except ValueError:
        pass
    try:
        socket.inet_aton(name)  # 127.1, 2130706433: addresses too, to the resolver
        return True
    except (OSError, ValueError):
        name = name.lower().rstrip(".")
        return name in LOCAL_NAMES or name.endswith(".localhost")


def network_log_check(log: NetworkLog) -> None:
    """Fail the test if it tried to leave the machine, whatever it did with the error."""
    if log.blocked:
        pytest.fail(
            "The test tried to leave the machine (only 127.0.0.0/8, ::1 and Unix sockets "
            "are allowed; map made-up names with the fake_dns fixture):\n  "
            + "\n  ".join(log.blocked),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def network_guard(request):
    """The network log of this test (see above); fails the test at teardown if any
    connection or DNS lookup was refused."""
    log = NetworkLog()
    lifted = request.config.option.force_enable_socket or request.node.get_closest_marker(
        "enable_socket"
    )
    guarded_connect = socket.socket.connect  # pytest-socket's, set for this test
    real = socket.getaddrinfo, socket.gethostbyname

    def connect(sock, address):
        log.connections.append((sock.family, address))
        try:
            return guarded_connect(sock, address)
        except pytest_socket.SocketConnectBlockedError as exc:
            log.blocked.append(str(exc))
            raise

    def connect_ex(sock, address):
        try:
            connect(sock, address)
        except OSError as exc:
            return exc.errno or 1
        return 0

    def refuse_names(lookup):
        def guarded(host, *args, **kwargs):
            if lifted or _is_local_name(host):
                return lookup(host, *args, **kwargs)
            message = f'A test tried to look up "{host}" in the DNS.'
            log.blocked.append(message)
            raise NetworkGuardError(message + " Use the fake_dns fixture (tests/receivers.py).")

        return guarded

    previous_connect_ex = socket.socket.connect_ex
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo, socket.gethostbyname = (refuse_names(lookup) for lookup in real)
    try:
        yield log
    finally:
        if socket.socket.connect is connect:  # pytest-socket may have restored its own
            socket.socket.connect = guarded_connect
        socket.socket.connect_ex = previous_connect_ex
        socket.getaddrinfo, socket.gethostbyname = real
    network_log_check(log)


pytest_plugins = ["tests.fixtures", "tests.receivers"]
