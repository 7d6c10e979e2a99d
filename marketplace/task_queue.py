"""Queueing Celery tasks without depending on the broker being up.

Every task the app queues is about work already recorded in the database (a stored
webhook event, a payout in "scheduled", an outbound delivery, a paid order's
emails). So a broker outage must not fail, or undo, the request that recorded the
work: the task is published once the transaction commits, and if the broker refuses
it the task is kept as a ``DeferredTask`` row, which ``deferred_tasks_send`` (every
minute, from beat) publishes once the broker is back. Tasks are idempotent, so a
task published twice does its work once.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery import Task
from django.db import DatabaseError, transaction
from kombu.exceptions import OperationalError

from marketplace.models import DeferredTask

logger = logging.getLogger(__name__)

SEND_BATCH = 500
# What a broker that is down, unreachable or too slow raises from a publish (kombu
# wraps the client's connection errors; sockets raise OSErrors). Anything else is a
# bug, or an eager task's own error in tests, and propagates.
BROKER_ERRORS = (OperationalError, OSError)


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Queue ``task(*args)`` when the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(enqueue, task, *args))


def enqueue(task: Task, *args: Any) -> bool:
    """Publish ``task(*args)`` now; if the broker refuses, keep it for later. True if sent."""
    try:
        task.apply_async(args=args)
    except BROKER_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("Broker refused %s%r (%s); kept to queue again", task.name, args, reason)
        try:
            DeferredTask.objects.create(task=task.name, args=list(args), error=reason)
        except DatabaseError:
            logger.exception("Could not keep %s%r for later either", task.name, args)
        return False
    return True


def deferred_tasks_send(*, pks: list[int] | None = None, limit: int = SEND_BATCH) -> int:
    """Publish the tasks the broker refused earlier (or those of ``pks``), oldest first,
    deleting each one sent; stops at the first refusal (the broker is still down).
    Returns how many were sent."""
    from marketplace.celery import app

    waiting = DeferredTask.objects.all() if pks is None else DeferredTask.objects.filter(pk__in=pks)
    sent = 0
    for deferred in waiting[:limit]:
        task = app.tasks.get(deferred.task)
        if task is None:
            logger.error(
                "Deferred task %s is not a registered task; left for an operator", deferred
            )
            continue
        try:
            task.apply_async(args=deferred.args)
        except BROKER_ERRORS as exc:
            DeferredTask.objects.filter(pk=deferred.pk).update(
                attempts=deferred.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:500]
            )
            logger.warning("Broker still refuses tasks (%s); %d sent", type(exc).__name__, sent)
            break
        deferred.delete()
        sent += 1
    return sent
