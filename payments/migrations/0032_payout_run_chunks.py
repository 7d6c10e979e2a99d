import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("payments", "0031_events_and_encrypted_webhook_secrets")]

    operations = [
        migrations.AddField(
            model_name="payoutrun",
            name="chunks_total",
            field=models.PositiveIntegerField(
                default=0, help_text="How many chunks of sellers the run was split into."
            ),
        ),
        migrations.AddField(
            model_name="payoutrun",
            name="chunks_done",
            field=models.PositiveIntegerField(
                default=0, help_text="How many chunks have made their payouts."
            ),
        ),
        migrations.AddField(
            model_name="payoutrun",
            name="sends_scheduled",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Processor sends queued so far: the next chunk's sends are paced "
                "after them.",
            ),
        ),
        migrations.AddConstraint(
            model_name="payoutrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("chunks_done__lte", models.F("chunks_total"))),
                name="payments_payoutrun_chunks_done_within_total",
            ),
        ),
        migrations.CreateModel(
            name="PayoutRunChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField()),
                ("first_seller_id", models.BigIntegerField()),
                ("last_seller_id", models.BigIntegerField(blank=True, null=True)),
                ("done_at", models.DateTimeField(blank=True, null=True)),
                ("payouts_created", models.PositiveIntegerField(default=0)),
                (
                    "skipped",
                    models.JSONField(
                        blank=True, default=list, help_text="Sellers not paid, and why."
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="payments.payoutrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run_id", "number"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "number"), name="payments_payoutrunchunk_once"
                    )
                ],
            },
        ),
    ]
