"""Signal receivers of the shop: thin callers of services."""

from marketplace.services.cart import cart_merge


def merge_cart_at_login(sender, request, user, **kwargs) -> None:
    """A visitor's cart follows them into their account."""
    if request is not None and hasattr(request, "session"):
        cart_merge(session=request.session, user=user)
