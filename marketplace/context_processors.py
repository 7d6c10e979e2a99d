from functools import cache

from marketplace.web import cart_storage


def cart(request):
    """``cart_count()`` for the header: read with the signed-in user
    (``ShopUserBackend``), else counted once, and only when a template uses it. Pages
    that read the cart anyway pass their own."""
    user = getattr(request, "user", None)
    units = getattr(user, "cart_units", False) if user is not None else False
    if units is not False:
        return {"cart_count": lambda: units or 0}
    return {"cart_count": cache(lambda: cart_storage(request).count())}
