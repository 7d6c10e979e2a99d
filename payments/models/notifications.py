"""Emails sent, one row each: a task delivered twice sends its email once."""

from __future__ import annotations

from django.db import models


class SentNotification(models.Model):
    """One email about one event (``key``: e.g. ``payout:12:paid``), sent once."""

    key = models.CharField(max_length=200, unique=True)
    recipients = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return self.key
