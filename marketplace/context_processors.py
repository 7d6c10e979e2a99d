from functools import cache

from marketplace.web import cart_storage


def cart(request):
    """``cart_count`` for the header: counted once, and only when a template uses it."""
    return {"cart_count": cache(lambda: cart_storage(request).count())}
