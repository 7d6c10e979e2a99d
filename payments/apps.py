from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Money, currencies and (in later work) the ledger, payouts and processors."""

    name = "payments"
    verbose_name = "Payments"
