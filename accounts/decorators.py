from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from accounts.roles import seller_for


def seller_required(view):
    """Only sellers get in; the seller profile is on ``request.seller``.

    A logged-in customer is sent to "become a seller"; a visitor to log in.
    """

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        seller = seller_for(request.user)
        if seller is None:
            messages.info(request, "Open a shop first to sell on the marketplace.")
            return redirect("accounts:seller_become")
        request.seller = seller
        return view(request, *args, **kwargs)

    return wrapper
