from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Money: the ledger, collection, revenue, payouts, reporting, integrations and the
    processors (docs/architecture.md)."""

    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # Services queue tasks by name (marketplace.kernel.task_queue): every process
        # that runs Django registers them here, so a name always finds its task.
        import payments.tasks  # noqa: F401
