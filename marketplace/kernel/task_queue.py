"""Queueing Celery tasks without depending on the broker being up.

Every task the app queues is about work already recorded in the database (a stored
webhook event, a payout in "scheduled", an outbound delivery, a paid order's
emails). So a broker outage must not fail, or undo, the request that recorded the
work: the task is published once the transaction commits, and if the broker refuses
it the task is kept as a ``DeferredTask`` row, which ``deferred_tasks_send`` (every
minute, from beat) publishes once the broker is back. Tasks are idempotent, so a
task published twice does its work once.

Tasks are named, never imported: a service queues ``"payments.tasks.payout_send_task"``
and the task module imports the service inside the task. So no service depends on a
``tasks`` module, and ``tasks`` modules are the dead ends of the import graph. Every
``tasks`` module is imported when its app is ready (``apps.py``), so every process
that runs Django knows every task by name.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery import Task, current_app
from django.db import DatabaseError, transaction
from kombu.exceptions import OperationalError

from marketplace.kernel.models import DeferredTask

logger = logging.getLogger(__name__)

SEND_BATCH = 500
# What a broker that is down, unreachable or too slow raises from a publish: kombu
# wraps the client's connection and timeout errors in its OperationalError. Anything
# else is a bug (or, in eager mode, the task's own error) and propagates.
BROKER_ERRORS = (OperationalError,)


def task_named(name: str) -> Task:
    """The registered Celery task called ``name`` (``LookupError`` if none is: a typo
    in a service, or a ``tasks`` module its app did not import when ready)."""
    try:
        return current_app.tasks[name]
    except KeyError:
        raise LookupError(f"No Celery task is named {name!r}.") from None


def _publish(task: Task, args: Any, countdown: float | None = None) -> None:
    """Publish with no result subscription: with a result backend on a Redis that is
    down, subscribing first would hang the request ~20 s and then raise a RuntimeError.
    Kombu's own short publish retries (~0.6 s on a refused connection) stay."""
    task.apply_async(args=args, ignore_result=True, countdown=countdown)


def enqueue_on_commit(task_name: str, *args: Any, countdown: float | None = None) -> None:
    """Queue the task named ``task_name`` with ``args`` when the current transaction
    commits (at once outside one), to run no sooner than ``countdown`` seconds after.
    The name is checked now, so a wrong one fails the caller, not the commit."""
    task_named(task_name)
    transaction.on_commit(partial(enqueue, task_name, *args, countdown=countdown))


def enqueue(task_name: str, *args: Any, countdown: float | None = None) -> bool:
    """Publish the task named ``task_name`` with ``args`` now; if the broker refuses,
    keep it for later (to run as soon as it is sent then, whatever ``countdown``).
    True if sent."""
    task = task_named(task_name)
    try:
        _publish(task, args, countdown)
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
    Each row is claimed under a row lock that concurrent senders skip (beat and an
    operator's "send now" never publish the same row twice), and deleted in the same
    transaction. Rows naming no registered task are left for an operator to delete.
    Returns how many were sent."""
    waiting = DeferredTask.objects.filter(task__in=list(current_app.tasks))
    if pks is not None:
        waiting = waiting.filter(pk__in=pks)
    sent = 0
    while sent < limit:
        with transaction.atomic():
            deferred = waiting.select_for_update(skip_locked=True).first()
            if deferred is None:
                break
            try:
                _publish(current_app.tasks[deferred.task], deferred.args)
            except BROKER_ERRORS as exc:
                DeferredTask.objects.filter(pk=deferred.pk).update(
                    attempts=deferred.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:500]
                )
                logger.warning("Broker still refuses tasks (%s); %d sent", type(exc).__name__, sent)
                break
            deferred.delete()
        sent += 1
    unknown = DeferredTask.objects.exclude(task__in=list(current_app.tasks)).count()
    if unknown:
        logger.error("%d deferred tasks name no registered task; left for an operator", unknown)
    return sent
