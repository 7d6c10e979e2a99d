"""Celery tasks of the shop domain."""

from celery import shared_task


@shared_task(bind=True, ignore_result=False)
def ping(self) -> dict[str, str]:
    """Answer with the name of the worker that ran it: proves the broker round trip."""
    return {"pong": "ok", "worker": self.request.hostname}


@shared_task
def idempotency_keys_expire_task() -> int:
    """Forget API Idempotency-Keys older than 24 hours."""
    from marketplace.kernel.api.idempotency import idempotency_keys_expire

    return idempotency_keys_expire()


@shared_task
def deferred_tasks_send_task() -> int:
    """Queue again the tasks the broker refused while it was down."""
    from marketplace.kernel.task_queue import deferred_tasks_send

    return deferred_tasks_send()
