from django.utils.functional import SimpleLazyObject

from accounts.roles import is_operator, seller_for


def roles(request):
    """``current_seller`` and ``is_operator`` for templates, queried only when used."""
    user = request.user
    return {
        "current_seller": SimpleLazyObject(lambda: seller_for(user)),
        "is_operator": SimpleLazyObject(lambda: is_operator(user)),
    }
