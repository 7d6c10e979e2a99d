"""Real processes for the fault tests, all on 127.0.0.1: a Redis and a PostgreSQL of
their own that a test may stop, kill and restart without touching the shared
services, gunicorn serving the app as in production, and Celery workers.

Every process writes its output to a log file in the test's temporary folder; a
failing test prints the tails (``Stack.logs``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(every)
    raise TimeoutError(f"{what} after {timeout:.0f} s")


def database_url(settings_dict: dict) -> str:
    """The URL of a Django database connection's settings (the test database)."""
    credentials = settings_dict["USER"] + (
        f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    )
    host = f"{settings_dict['HOST'] or HOST}:{settings_dict['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{settings_dict['NAME']}"


class LoadThreads:
    """The threads that put load on a stack. An exception that ends one is recorded,
    so a test cannot pass with a load thread that died early."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self, target: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                self.errors.append(f"{target.__name__}{args!r}: {exc!r}")

        thread = threading.Thread(target=run, name=target.__name__, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        assert not alive, f"load threads still running: {alive}"
        assert not self.errors, f"load threads died: {self.errors}"


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._file = self.log.open("w")
        self.popen = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach its children
        )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to acknowledge or clean up."""
        if self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        if self.running:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._file.close()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])


class RedisServer:
    """A Redis of our own on a free port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        argv = [binary, "--port", str(self.port), "--bind", HOST, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = Process("redis", argv, dict(os.environ), self.directory)
        wait_for(self.answers, timeout=15, what="Redis did not start")

    def answers(self) -> bool:
        import redis

        return bool(redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping())

    def stop(self) -> None:
        """Stop the server (SIGTERM, as ``systemctl stop`` does)."""
        if self.process is not None:
            self.process.stop()
            self.process = None


class PostgresServer:
    """A PostgreSQL cluster of our own on a free port, made with initdb (as the
    ``postgres`` user when the tests run as root), that a test may restart. It lives
    in a folder of its own under the system's temporary folder, which that user can
    reach (pytest's are private to root); ``remove()`` deletes it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="marketplace-faults-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()

    def url(self, name: str) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{name}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stdout}{result.stderr}"

    def start(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        assert initdb and pg_ctl, "PostgreSQL's initdb and pg_ctl are not on PATH"
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start")

    def _pg_ctl(self, action: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        pg_ctl = shutil.which("pg_ctl")
        assert pg_ctl
        self._run(
            pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.directory / "pg.log"),
            "-m", "fast", "-w", "-t", "60", action,
        )  # fmt: skip

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop (``-m fast``: every connection is cut), stay down ``down_for`` seconds,
        start again."""
        self._pg_ctl("stop")
        time.sleep(down_for)
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("stop")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


class Stack:
    """The processes of one test; ``close()`` stops them all."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.processes: list[Process] = []

    @staticmethod
    def app_env(*, database_url: str, broker_url: str, var_dir: Path, **extra: str) -> dict:
        """The environment of a production-like web or worker process."""
        return os.environ | {
            "DJANGO_SETTINGS_MODULE": "marketplace.settings",
            "DEBUG": "false",
            "SECRET_KEY": "fault-tests-" + "x" * 50,
            "ALLOWED_HOSTS": HOST,
            "USE_X_FORWARDED_PROTO": "true",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            # As in production: results on the broker's Redis (nothing reads them, but
            # a result backend on a Redis that is down must not break publishing).
            "CELERY_RESULT_BACKEND": broker_url.rsplit("/", 1)[0] + "/15",
            # As in production: the API's rate limits counted in Redis, shared by the
            # web processes (a test may give another CACHE_URL).
            "CACHE_URL": broker_url.rsplit("/", 1)[0] + "/1",
            # Production has no default for the webhook secrets' encryption key.
            "WEBHOOK_SECRET_KEYS": "ZmF1bHQtdGVzdHMtd2ViaG9vay1zZWNyZXRzLWtleSE=",
            "CELERY_TASK_DEFAULT_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
            "VAR_DIR": str(var_dir),
            "EMAIL_URL": "consolemail://",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def _start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.env, self.directory)
        self.processes.append(process)
        return process

    def web(self, *, workers: int = 2) -> tuple[Process, str]:
        """gunicorn as the Procfile runs it; returns the process and its base URL."""
        port = free_port()
        process = self._start(
            "gunicorn",
            [
                sys.executable, "-m", "gunicorn", "marketplace.wsgi",
                "--bind", f"{HOST}:{port}", "--workers", str(workers),
                "--timeout", "30", "--graceful-timeout", "5",
                "--control-socket", str(self.directory / f"gunicorn-{port}.ctl"),
            ],
        )  # fmt: skip
        base = f"http://{HOST}:{port}"
        wait_for(
            lambda: requests.get(f"{base}/livez", timeout=2).ok,
            timeout=60,
            what="gunicorn did not answer /livez",
        )
        return process, base

    def worker(self, *, name: str = "worker", concurrency: int = 1) -> Process:
        """A Celery worker on this stack's queue (prefork, so SIGKILL hits a pool child
        that is running a task as well as the parent)."""
        return self._start(
            name,
            [
                sys.executable, "-m", "celery", "-A", "marketplace", "worker",
                "--queues", self.env["CELERY_TASK_DEFAULT_QUEUE"],
                "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h",
                "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
                "--loglevel", "INFO",
            ],
        )  # fmt: skip

    def send_task(self, name: str) -> None:
        """Queue a task by name on this stack's broker, as beat does."""
        result = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "marketplace", "call", name],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def manage(self, *argv: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)
