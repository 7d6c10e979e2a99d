# Events integrators can list, webhook endpoint secrets encrypted at rest and rotated.

import django.db.models.deletion
from django.db import migrations, models

SCHEDULE = "Delete events older than 30 days and expired rotated webhook secrets"


def encrypt_secrets(apps, schema_editor):
    """Encrypt every secret stored in clear text until now (the first key of
    WEBHOOK_SECRET_KEYS)."""
    from payments.webhook_secrets import secret_encrypt

    WebhookEndpoint = apps.get_model("payments", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.exclude(secret_encrypted="").only(
        "pk", "secret_encrypted"
    ):
        endpoint.secret_encrypted = secret_encrypt(endpoint.secret_encrypted)
        endpoint.save(update_fields=["secret_encrypted"])


def decrypt_secrets(apps, schema_editor):
    from payments.webhook_secrets import secret_decrypt

    WebhookEndpoint = apps.get_model("payments", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.exclude(secret_encrypted="").only(
        "pk", "secret_encrypted"
    ):
        endpoint.secret_encrypted = secret_decrypt(endpoint.secret_encrypted)
        endpoint.save(update_fields=["secret_encrypted"])


def schedule(apps, schema_editor):
    """Daily at 04:10."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="10", hour="4", day_of_week="*", day_of_month="*", month_of_year="*"
    )
    PeriodicTask.objects.get_or_create(
        name=SCHEDULE,
        defaults={"task": "payments.tasks.webhook_retention_task", "crontab": crontab},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("payments", "0030_metadata"),
    ]

    operations = [
        migrations.RenameField(
            model_name="webhookendpoint", old_name="secret", new_name="secret_encrypted"
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret_encrypted",
            field=models.TextField(
                blank=True, editable=False, help_text="The signing secret, Fernet-encrypted."
            ),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="previous_secret_encrypted",
            field=models.TextField(
                blank=True,
                editable=False,
                help_text="The secret before the last rotation, encrypted.",
            ),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="previous_secret_expires_at",
            field=models.DateTimeField(
                blank=True, null=True, help_text="Until then deliveries are also signed with it."
            ),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
        migrations.CreateModel(
            name="Event",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "event_id",
                    models.UUIDField(
                        db_index=True,
                        help_text="The public id: the webhook body's id and Marketplace-Delivery.",
                    ),
                ),
                ("type", models.CharField(max_length=40)),
                (
                    "object_type",
                    models.CharField(help_text="order, refund or payout", max_length=20),
                ),
                ("object_id", models.PositiveBigIntegerField()),
                ("data", models.JSONField()),
                ("created_at", models.DateTimeField(db_index=True)),
                (
                    "seller",
                    models.ForeignKey(
                        blank=True,
                        help_text="Empty: the platform-wide payload (operators).",
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.seller",
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "indexes": [
                    models.Index(fields=["seller", "-id"], name="payments_event_seller_newest"),
                    models.Index(fields=["object_type", "object_id"], name="payments_event_object"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("seller__isnull", False)),
                        fields=("event_id", "seller"),
                        name="payments_event_once_per_seller",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("seller__isnull", True)),
                        fields=("event_id",),
                        name="payments_event_once_platform_wide",
                    ),
                ],
            },
        ),
        migrations.RunPython(schedule, unschedule),
    ]
