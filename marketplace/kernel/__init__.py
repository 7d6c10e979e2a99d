"""The shared kernel: what every app uses and no app owns.

Errors every layer raises (``errors``), money in integer minor units (``money``,
``currencies``), queueing Celery tasks by name so a broker outage loses nothing
(``task_queue``), slugs, form errors, request ids in logs, CSV cells
(``spreadsheets``), what a database outage looks like (``unavailable``), the two
tables of that plumbing (``models``) and the REST API's plumbing (``api``: the
problem-details error format, idempotency keys, cursor pagination, strict parsing,
throttling).

It may import the standard library and the libraries the project runs on (Django,
DRF, drf-spectacular, Celery and kombu, babel): never ``accounts``, ``payments`` or any
other module of ``marketplace`` (import-linter's contract "The shared kernel imports
no domain code" keeps it so).
"""
