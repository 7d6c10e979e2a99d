"""When the database is unavailable: which errors say so (a retry may work), and what
the API and the last-resort error pages answer then."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = (
    "The service is briefly unavailable; the request may not have completed. Check "
    "whether it did before sending it again (the same Idempotency-Key answers this again)."
)
# PostgreSQL's codes for "not reachable now": connection exceptions (class 08), the
# server shutting down or starting up (57P01-57P03), too many connections (53300).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unavailable(exc: BaseException | None) -> bool:
    """The database could not be reached or dropped the connection, so a retry may work.
    Other database errors (a statement timeout, a deadlock, a full disk, a missing
    table) are bugs or capacity problems and stay 500s."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", False)
    if sqlstate is False:  # not PostgreSQL (SQLite in development)
        return False
    # psycopg gives no SQLSTATE when it cannot connect or the connection is lost.
    return sqlstate is None or str(sqlstate).startswith(UNAVAILABLE_SQLSTATES)
