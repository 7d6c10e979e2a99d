"""Count the SQL statements of every process of a running stack (gunicorn workers,
Celery's worker and its pool processes), without touching the application.

``install(directory)`` hooks Django's ``connection_created`` signal: each new
database connection gets an execute wrapper that adds one to a per-process
counter, and a daemon thread of that process writes the counter to
``<directory>/<pid>`` a few times a second. ``per_process(directory)`` reads the
files; read it before and after a phase (after ``FLUSH_SECONDS``) for that phase's
statements. Call ``install`` before the processes fork (gunicorn's ``post_fork``
hook, or before Celery starts its pool): the pid check starts a writer in every
child.

Used through ``python -m bench.dbcount gunicorn ...`` / ``python -m bench.dbcount
celery ...``, which install the counter (from ``BENCH_DBCOUNT_DIR``) and then
run the real command line unchanged.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

FLUSH_SECONDS = 0.25

_count = 0
_writer_pid: int | None = None
_directory: Path | None = None


def _counting(execute, sql, params, many, context):
    global _count
    _count += 1
    return execute(sql, params, many, context)


def _write_forever(directory: Path) -> None:
    pid = os.getpid()
    path = directory / str(pid)
    written = -1
    while True:
        if _count != written:
            written = _count
            tmp = directory / f".{pid}.tmp"
            tmp.write_text(str(written))
            tmp.replace(path)
        time.sleep(FLUSH_SECONDS)


def _on_connection(sender, connection, **kwargs) -> None:
    global _writer_pid, _count
    if _writer_pid != os.getpid():
        # A new process (or the first connection): start counting from zero here;
        # the parent's count is in the parent's own file.
        _writer_pid = os.getpid()
        _count = 0
        assert _directory is not None
        threading.Thread(target=_write_forever, args=(_directory,), daemon=True).start()
    if _counting not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counting)


def install(directory: str | Path) -> None:
    global _directory
    from django.db.backends.signals import connection_created

    _directory = Path(directory)
    _directory.mkdir(parents=True, exist_ok=True)
    connection_created.connect(_on_connection, weak=False)


def per_process(directory: str | Path) -> dict[int, int]:
    """Statements so far, by pid."""
    return {int(p.name): int(p.read_text() or 0) for p in Path(directory).glob("[0-9]*")}


def main() -> None:
    """``python -m bench.dbcount gunicorn|celery ARGS...``: the command, counted."""
    install(os.environ["BENCH_DBCOUNT_DIR"])
    command, sys.argv = sys.argv[1], sys.argv[1:]
    if command == "gunicorn":
        from gunicorn.app.wsgiapp import run

        run()
    elif command == "celery":
        from celery.__main__ import main as celery_main

        celery_main()
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
