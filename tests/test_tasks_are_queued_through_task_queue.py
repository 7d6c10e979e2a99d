"""Application code queues tasks only through ``marketplace.kernel.task_queue``, which keeps
what the broker refuses: a bare ``.delay()`` would turn a broker outage into an error
for the request, or lose the task."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_PUBLISH = re.compile(r"\.(delay|apply_async)\(")


def test_no_task_is_published_outside_the_task_queue_module():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for app in ("accounts", "marketplace", "payments")
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and path.name != "task_queue.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if BARE_PUBLISH.search(line)
    ]
    assert offenders == []


QUEUED_BY_NAME = re.compile(r"\benqueue(?:_on_commit)?\(\s*\"([\w.]+)\"")


def test_every_task_queued_by_name_is_a_registered_task():
    """Services queue tasks by name (no service imports a tasks module): each name in
    the code is a task the apps register when ready, so a typo fails here, not in
    production when the broker is asked for it."""
    from celery import current_app

    queued = {
        name
        for app in ("accounts", "marketplace", "payments")
        for path in (ROOT / app).rglob("*.py")
        for name in QUEUED_BY_NAME.findall(path.read_text())
    }
    assert len(queued) >= 10  # the scan finds the services' calls
    assert sorted(queued - set(current_app.tasks)) == []


def test_a_wrong_task_name_fails_the_caller_at_once():
    import pytest

    from marketplace.kernel.task_queue import enqueue_on_commit

    with pytest.raises(LookupError, match=r"No Celery task is named 'payments\.tasks\.nope'"):
        enqueue_on_commit("payments.tasks.nope", 1)
