"""Refunds and disputes record their part of the order's service fee (issue 19, part C)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0035_revenue_models_and_bank_debits"),
    ]

    operations = [
        migrations.AddField(
            model_name="dispute",
            name="service_fee_minor",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.AddField(
            model_name="refund",
            name="service_fee_minor",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.AlterField(
            model_name="refund",
            name="amount_minor",
            field=models.BigIntegerField(
                help_text="What the customer gets back: the lines' parts plus the service "
                "fee's part."
            ),
        ),
        migrations.AddConstraint(
            model_name="dispute",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("service_fee_minor__gte", 0),
                    ("service_fee_minor__lte", models.F("amount_minor")),
                ),
                name="payments_dispute_service_fee_within_amount",
            ),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("service_fee_minor__gte", 0),
                    ("service_fee_minor__lte", models.F("amount_minor")),
                ),
                name="payments_refund_service_fee_within_amount",
            ),
        ),
    ]
