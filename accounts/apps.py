from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    """Users (email login), seller profiles and the operator role."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts.roles import operators_group_sync_handler

        post_migrate.connect(operators_group_sync_handler, dispatch_uid="accounts.operators_group")
