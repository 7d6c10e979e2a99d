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
import re
import sys
import threading
import time
from pathlib import Path

FLUSH_SECONDS = 0.25
# The local processor's own tables: with Stripe these statements are HTTP calls.
PROCESSOR_TABLES = re.compile(r'"payments_local\w*"')
# Besides the statements (``<directory>/<pid>``), kept in sub-folders by pid:
# commits (as pg_stat_database counts them: a statement outside a transaction, or an
# outermost transaction that ran a statement), and of those the processor's
# (statements on its tables; transactions that touched only them).
KINDS = ("commits", "processor_statements", "processor_commits")

_count = 0
_counts = dict.fromkeys(KINDS, 0)
_writer_pid: int | None = None
_directory: Path | None = None
_transaction = {"open": False, "ours": False}


def _counting(execute, sql, params, many, context):
    global _count
    _count += 1
    processor = bool(PROCESSOR_TABLES.search(sql))
    if processor:
        _counts["processor_statements"] += 1
    if context["connection"].in_atomic_block:
        _transaction["open"] = True
        _transaction["ours"] |= not processor
    else:
        _counts["processor_commits" if processor else "commits"] += 1
        if processor:
            _counts["commits"] += 1
    return execute(sql, params, many, context)


def _committed() -> None:
    if _transaction["open"]:
        _counts["commits"] += 1
        if not _transaction["ours"]:
            _counts["processor_commits"] += 1
    _transaction["open"] = _transaction["ours"] = False


def _write(path: Path, value: int) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(str(value))
    tmp.replace(path)


def _write_forever(directory: Path) -> None:
    pid = os.getpid()
    written: tuple = ()
    for kind in KINDS:
        (directory / kind).mkdir(exist_ok=True)
    while True:
        now = (_count, *(_counts[k] for k in KINDS))
        if now != written:
            written = now
            _write(directory / str(pid), _count)
            for kind in KINDS:
                _write(directory / kind / str(pid), _counts[kind])
        time.sleep(FLUSH_SECONDS)


def _on_connection(sender, connection, **kwargs) -> None:
    global _writer_pid, _count
    if _writer_pid != os.getpid():
        # A new process (or the first connection): start counting from zero here;
        # the parent's count is in the parent's own file.
        _writer_pid = os.getpid()
        _count = 0
        for kind in KINDS:
            _counts[kind] = 0
        assert _directory is not None
        threading.Thread(target=_write_forever, args=(_directory,), daemon=True).start()
    if _counting not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counting)
    if not getattr(connection, "_bench_counts_commits", False):
        commit = connection.commit

        def counted_commit():
            _committed()
            return commit()

        connection.commit = counted_commit
        connection._bench_counts_commits = True


def install(directory: str | Path) -> None:
    global _directory
    from django.db.backends.signals import connection_created

    _directory = Path(directory)
    _directory.mkdir(parents=True, exist_ok=True)
    connection_created.connect(_on_connection, weak=False)


def per_process(directory: str | Path, kind: str = "") -> dict[int, int]:
    """Statements so far (or one of ``KINDS``), by pid."""
    folder = Path(directory) / kind if kind else Path(directory)
    return {int(p.name): int(p.read_text() or 0) for p in folder.glob("[0-9]*")}


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
