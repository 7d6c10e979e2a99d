"""``make bench``: the benchmarks of the production-readiness issue, one after the
other on PostgreSQL, then their rows in one table.

    .venv-bench/bin/python -m bench            # the full sizes (about 25 minutes)
    .venv-bench/bin/python -m bench --quick    # small sizes, to prove they run
    .venv-bench/bin/python -m bench --only payout

Each benchmark runs in its own process and prints its own detail; the rows it ends
with (``bench/report.py``) are gathered and printed again at the end with the
machine they were measured on. ``BENCH_DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/marketplace_bench``) is created if missing and
WIPED by each benchmark; Redis on 127.0.0.1 carries the checkout's and the webhooks'
tasks (databases 9 to 12, emptied by them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bench.report import HEADER, ROW_PREFIX

BENCHMARKS = [
    ("ledger posting", "bench.ledger_posting"),
    ("payout run", "bench.payouts"),
    ("balance and dashboard", "bench.dashboard"),
    ("check_ledger", "bench.check_ledger"),
    ("checkout over HTTP", "bench.checkout_http"),
    ("webhook ingestion", "bench.webhooks"),
]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketplace_bench"
# The webhook benchmark publishes through a real broker (the checkout one makes its
# server's environment itself).
BENCHMARK_ENV = {
    "bench.webhooks": {
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/9",
        "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/10",
    }
}


def ensure_database(url: str) -> str:
    """Create the database if missing; returns the server's version."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = parts._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{name}"')
        return conn.execute("SHOW server_version").fetchone()[0]


def run(module: str, args: list[str], env: dict[str, str]) -> tuple[int, list[str], float]:
    """Run one benchmark, echoing its output; returns its exit code, rows and seconds."""
    started = time.monotonic()
    rows: list[str] = []
    separator = HEADER.splitlines()[-1]
    after_header = False
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        text = line.rstrip("\n")
        if after_header and text.startswith(ROW_PREFIX):  # a Row: printed under HEADER
            rows.append(text)
        after_header = text == separator
    return process.wait(), rows, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", help="run the benchmarks whose name contains this")
    options = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    version = ensure_database(database_url)
    env = os.environ | {
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "PYTHONUNBUFFERED": "1",  # each benchmark's detail as it happens
    }
    extra = ["--quick"] if options.quick else []
    chosen = [(n, m) for n, m in BENCHMARKS if not options.only or options.only in n]

    results: list[tuple[str, int, list[str], float]] = []
    for name, module in chosen:
        print(f"\n=== {name} ({module}{' --quick' if extra else ''})", flush=True)
        args = (
            [*extra, "--database-url", database_url] if module == "bench.checkout_http" else extra
        )
        code, rows, seconds = run(module, args, env | BENCHMARK_ENV.get(module, {}))
        results.append((name, code, rows, seconds))

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n## make bench{' --quick' if extra else ''}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC:"
        f" PostgreSQL {version}, {os.cpu_count()} CPUs, load average now {load}\n"
    )
    print(HEADER)
    failed = []
    for name, code, rows, seconds in results:
        for row in rows:
            print(row)
        if code != 0 or not rows:
            failed.append(f"{name} (exit {code}, {len(rows)} rows, {seconds:.0f} s)")
    print()
    for name, _, _, seconds in results:
        print(f"- {name}: {seconds:.0f} s")
    if failed:
        sys.exit("Benchmarks that did not finish: " + "; ".join(failed))


if __name__ == "__main__":
    main()
