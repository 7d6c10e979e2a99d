"""The three roles and what each may do.

- customer: every active user (the default role);
- seller: a user with a ``Seller`` profile;
- operator: a staff user in the ``Operators`` group. Operators run the
  marketplace in the admin with the group's permissions; they are not
  superusers.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from accounts.models import Seller

OPERATORS_GROUP = "Operators"

# Apps whose every model an operator may add, change, delete and view.
OPERATOR_MANAGED_APPS = ("marketplace", "payments", "django_celery_beat")
# Account models operators may look at and change, but never delete: an
# account with orders and money behind it is deactivated, not removed.
OPERATOR_ACCOUNT_CODENAMES = (
    "view_user",
    "change_user",
    "view_seller",
    "change_seller",
    "add_seller",
    "view_apitoken",
    "change_apitoken",
)
# Login throttling (django-axes): operators see the attempts and lockouts and lift a
# lockout by deleting its attempt.
OPERATOR_AXES_CODENAMES = ("view_accessattempt", "delete_accessattempt", "view_accesslog")


def seller_for(user) -> Seller | None:
    """The user's seller profile, or None for customers and anonymous visitors."""
    if not user.is_authenticated:
        return None
    try:
        return user.seller
    except Seller.DoesNotExist:
        return None


def is_operator(user) -> bool:
    return bool(
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.groups.filter(name=OPERATORS_GROUP).exists()
    )


def operators_group_sync() -> Group:
    """Make the Operators group hold exactly the operator permissions that exist now."""
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    permissions = Permission.objects.filter(
        Q(content_type__app_label__in=OPERATOR_MANAGED_APPS)
        | Q(content_type__app_label="accounts", codename__in=OPERATOR_ACCOUNT_CODENAMES)
        | Q(content_type__app_label="axes", codename__in=OPERATOR_AXES_CODENAMES)
    )
    group.permissions.set(permissions)
    return group


def operators_group_sync_handler(sender, **kwargs) -> None:
    """post_migrate: permissions of newly migrated models reach the group at once."""
    using = kwargs.get("using", "default")
    if using != "default":
        return
    operators_group_sync()
