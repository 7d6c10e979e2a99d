"""The site's authentication backend (after django-axes' lockout check)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum

User = get_user_model()


class ShopUserBackend(ModelBackend):
    """Django's ``ModelBackend``; the user of each request is read in one query with
    what every page's header shows about them: their seller profile (``user.seller``,
    or none: ``accounts.roles.seller_for``) and the units in their cart
    (``user.cart_units``, None when empty: ``marketplace.context_processors.cart``),
    as they are when the request starts.

    A wrong password ends the login here (``PermissionDenied``, which Django reports
    as a failed login, as django-axes counts): Django's own ``ModelBackend``, listed
    after this one so that sessions signed in before it stay signed in, would only
    hash the same wrong password a second time."""

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and password is not None:
            raise PermissionDenied
        return user

    def get_user(self, user_id):
        from marketplace.models import CartItem

        units = (
            CartItem.objects.filter(user=OuterRef("pk"))
            .values("user")
            .annotate(units=Sum("quantity"))
            .values("units")
        )
        users = User._default_manager.select_related("seller").annotate(cart_units=Subquery(units))
        try:
            user = users.get(pk=user_id)
        except User.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
