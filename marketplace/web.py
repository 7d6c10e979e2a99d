"""Small helpers shared by the shop's views."""

from django.http import HttpRequest

from marketplace.services.cart import CartStorage


def cart_storage(request: HttpRequest) -> CartStorage:
    """The cart of whoever is browsing: the user's when signed in, else the session's."""
    if request.user.is_authenticated:
        return CartStorage(user=request.user)
    return CartStorage(session=request.session)
