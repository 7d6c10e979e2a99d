"""Who changed a money setting (a commission rule, a payout policy), when, how and why."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SettingChange(models.Model):
    """One change of a commission rule or payout policy; written by the save services,
    never edited."""

    class Target(models.TextChoices):
        COMMISSION_RULE = "commission_rule", "Commission rule"
        PAYOUT_POLICY = "payout_policy", "Payout policy"

    target = models.CharField(max_length=20, choices=Target.choices)
    target_id = models.PositiveBigIntegerField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    via = models.CharField(max_length=10, help_text="admin, api or code")
    reason = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(help_text="Field name to [before, after].")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target", "target_id"], name="settingchange_target_idx")]

    def __str__(self) -> str:
        return f"{self.get_target_display()} #{self.target_id} changed"
