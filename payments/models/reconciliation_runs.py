"""The result of each reconciliation of the ledger with the processor, kept so the
console can say how the last one went without asking the processor again."""

from __future__ import annotations

from django.db import models


class ReconciliationRun(models.Model):
    """One reconciliation (``payments.reporting.reconciliation.reconciliation_record``): the period,
    how many movements matched, and the differences found (never edited)."""

    since = models.DateTimeField()
    until = models.DateTimeField()
    via = models.CharField(max_length=10, help_text="beat, command or admin")
    matched = models.PositiveIntegerField()
    difference_count = models.PositiveIntegerField()
    differences = models.JSONField(
        default=list, blank=True, help_text="The first differences, as the page lists them."
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation of {self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M}"
