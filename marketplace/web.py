"""Small helpers shared by the shop's views."""

from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

from marketplace.services.cart import CartStorage


def cart_storage(request: HttpRequest) -> CartStorage:
    """The cart of whoever is browsing: the user's when signed in, else the session's."""
    if request.user.is_authenticated:
        return CartStorage(user=request.user)
    return CartStorage(session=request.session)


def safe_next(request: HttpRequest, default: str) -> str:
    """The ``next`` address the form or link asked for, if it stays on this site (same
    host, and https when the request is), else ``default``."""
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def one_transaction(view):
    """Run the whole request in one database transaction: the session and user it
    reads, the view's reads and writes, the page it renders (one commit, where each
    autocommit query would be one). ``SHOP_REQUEST_IN_ONE_TRANSACTION`` (off on
    SQLite) turns it off. Not for views that must commit before calling the processor
    (paying): they keep their own transactions."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.SHOP_REQUEST_IN_ONE_TRANSACTION:
            return view(request, *args, **kwargs)
        with transaction.atomic():
            return view(request, *args, **kwargs)

    return wrapped
