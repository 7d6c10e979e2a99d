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
