"""The shared kernel: what every app uses and no app owns.

Errors every layer raises (``errors``), money in integer minor units (``money``,
``currencies``), queueing Celery tasks by name so a broker outage loses nothing
(``task_queue``), slugs, form errors, encryption at rest, the two tables of that
plumbing (``models``) and the REST API's plumbing (``api``: the problem-details
error format, idempotency keys, cursor pagination, strict parsing, throttling).

It may import Django, DRF and the standard library only: never ``accounts``,
``payments`` or any other module of ``marketplace`` (import-linter's contract
"The shared kernel imports no domain code" keeps it so).
"""
