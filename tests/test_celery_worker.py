"""A real Celery worker process, not eager mode, runs a task sent through the
configured broker (the embedded SQLite broker by default, Redis in CI)."""

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from marketplace.celery import app
from marketplace.tasks import ping

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker():
    """Start `celery worker` on a queue of its own, so no other worker can take the task."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "marketplace",
            "worker",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=BASE_DIR,
        env=os.environ | {"DJANGO_SETTINGS_MODULE": "marketplace.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield queue
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    print(output)  # shown by pytest when the test fails


@pytest.mark.celery_worker
def test_a_real_worker_runs_a_task_through_the_configured_broker(worker):
    assert not app.conf.task_always_eager
    assert app.conf.broker_url == settings.CELERY_BROKER_URL

    # disable_sync_subtasks: tasks run eagerly earlier in this process can leave
    # Celery believing it is inside a task; this test is not.
    result = ping.apply_async(queue=worker).get(timeout=90, disable_sync_subtasks=False)

    assert result == {"pong": "ok", "worker": f"{worker}@{socket.gethostname()}"}
