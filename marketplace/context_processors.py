from django.utils.functional import SimpleLazyObject

from marketplace.web import cart_storage


def cart(request):
    """``cart_count`` for the header, queried only when a template uses it."""
    return {"cart_count": SimpleLazyObject(lambda: cart_storage(request).count())}
