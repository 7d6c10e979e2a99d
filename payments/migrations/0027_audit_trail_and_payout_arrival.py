"""One audit trail: payout actions and setting changes move into ``AuditRecord``;
payouts learn their arrival date and the bank account's last four digits."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

SETTING_MODELS = {"commission_rule": "commissionrule", "payout_policy": "payoutpolicy"}


def copy_into_audit_records(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditRecord = apps.get_model("payments", "AuditRecord")
    PayoutAction = apps.get_model("payments", "PayoutAction")
    SettingChange = apps.get_model("payments", "SettingChange")

    def content_type(model):
        return ContentType.objects.get_or_create(app_label="payments", model=model)[0]

    rows = []
    if PayoutAction.objects.exists():
        payout = content_type("payout")
        for action in PayoutAction.objects.order_by("id").iterator():
            rows.append(
                AuditRecord(
                    content_type=payout,
                    object_id=action.payout_id,
                    action=action.action,
                    actor_id=action.actor_id,
                    via="code" if action.actor_id else "system",
                    reason=action.reason,
                    at=action.at,
                )
            )
    for change in SettingChange.objects.order_by("id").iterator():
        rows.append(
            AuditRecord(
                content_type=content_type(SETTING_MODELS[change.target]),
                object_id=change.target_id,
                action="created"
                if all(before is None for before, _ in change.changes.values())
                else "changed",
                actor_id=change.changed_by_id,
                via=change.via,
                reason=change.reason,
                changes=change.changes,
                at=change.at,
            )
        )
    created = AuditRecord.objects.bulk_create(rows, batch_size=1000)
    # ``at`` is auto_now_add: put the original times back.
    for record, row in zip(created, rows, strict=True):
        AuditRecord.objects.filter(pk=record.pk).update(at=row.at)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("payments", "0026_stripe_two_steps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="payout",
            name="arrival_on",
            field=models.DateField(
                blank=True,
                help_text="When the money is due in the seller's bank: the processor's arrival "
                "date, or for a manual payout the day it was marked paid.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="payout",
            name="bank_last4",
            field=models.CharField(
                blank=True,
                help_text="The last four digits of the bank account paid.",
                max_length=4,
            ),
        ),
        migrations.CreateModel(
            name="AuditRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("object_id", models.PositiveBigIntegerField()),
                (
                    "action",
                    models.CharField(
                        help_text="What was done, e.g. changed, approve.", max_length=30
                    ),
                ),
                ("via", models.CharField(default="code", max_length=10)),
                ("reason", models.CharField(blank=True, max_length=255)),
                (
                    "changes",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Field name to [before, after], for changes.",
                    ),
                ),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "content_type",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
            ],
            options={"ordering": ["-at", "-id"]},
        ),
        migrations.AddIndex(
            model_name="auditrecord",
            index=models.Index(
                fields=["content_type", "object_id", "-at"], name="auditrecord_target_idx"
            ),
        ),
        migrations.RunPython(copy_into_audit_records, migrations.RunPython.noop),
        migrations.DeleteModel(name="PayoutAction"),
        migrations.DeleteModel(name="SettingChange"),
    ]
