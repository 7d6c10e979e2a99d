from __future__ import annotations

from django.db import models


class DeferredTask(models.Model):
    """A task the broker refused when it was queued, kept until it can be queued again.

    Written only when publishing fails (the broker is down); ``deferred_tasks_send``
    publishes these rows every minute and deletes each one it publishes.
    """

    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list)
    error = models.CharField(max_length=500, blank=True, help_text="Why the last publish failed.")
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)!r}"
