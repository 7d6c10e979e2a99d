"""The one audit trail: who changed or acted on money, a policy or a rule, when, through
what and why. Every operator-facing history reads it."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AuditRecord(models.Model):
    """One change or action on one object (a payout approved, a policy edited, a seller
    frozen, an order refunded); written by the services, never edited or deleted."""

    class Via(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        SELLER = "seller", "Seller pages"
        SYSTEM = "system", "System"
        CODE = "code", "Code"

    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    action = models.CharField(max_length=30, help_text="What was done, e.g. changed, approve.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    via = models.CharField(max_length=10, default=Via.CODE)
    reason = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(
        default=dict, blank=True, help_text="Field name to [before, after], for changes."
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["content_type", "object_id", "-at"], name="auditrecord_target_idx")
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.content_type.model} #{self.object_id}"
