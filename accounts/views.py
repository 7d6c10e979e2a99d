"""Account pages. Each view validates a form and calls one service."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.forms import (
    ApiTokenForm,
    ProfileForm,
    SellerProfileForm,
    SellerSignUpForm,
    SignUpForm,
)
from accounts.roles import seller_for
from accounts.tokens import api_token_create, api_token_revoke
from marketplace.kernel.errors import ApplicationError
from marketplace.kernel.form_errors import add_service_error
from marketplace.web import safe_next

BACKEND = "marketplace.auth_backends.ShopUserBackend"


@require_http_methods(["GET", "POST"])
def sign_up(request):
    if request.user.is_authenticated:
        return redirect("accounts:profile")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                full_name=form.cleaned_data["full_name"],
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            login(request, user, backend=BACKEND)
            messages.success(request, "Welcome! Your account is ready.")
            return redirect(safe_next(request, reverse("marketplace:home")))
    return render(request, "accounts/sign_up.html", {"form": form, "next": safe_next(request, "")})


@require_http_methods(["GET", "POST"])
def seller_sign_up(request):
    if request.user.is_authenticated:
        return redirect("accounts:seller_become")
    form = SellerSignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            seller = services.seller_sign_up(
                email=data["email"],
                password=data["password1"],
                full_name=data["full_name"],
                display_name=data["display_name"],
                slug=data["slug"],
                country=data["country"],
                default_currency=data["default_currency"],
            )
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            login(request, seller.user, backend=BACKEND)
            messages.success(request, f"{seller.display_name} is open. Add your first product.")
            return redirect("marketplace:seller_product_list")
    return render(request, "accounts/seller_sign_up.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def seller_become(request):
    if seller_for(request.user) is not None:
        return redirect("marketplace:seller_product_list")
    form = SellerProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            seller = services.seller_become(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"{seller.display_name} is open. Add your first product.")
            return redirect("marketplace:seller_product_list")
    return render(request, "accounts/seller_become.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, initial={"full_name": request.user.full_name})
    if request.method == "POST" and form.is_valid():
        services.profile_update(user=request.user, full_name=form.cleaned_data["full_name"])
        messages.success(request, "Your profile was saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    """List the user's API tokens and create one; a new token is shown once, here."""
    form = ApiTokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_token_create(user=request.user, name=form.cleaned_data["name"])
            form = ApiTokenForm()
        except ApplicationError as exc:
            form.add_error(None, str(exc))
    response = render(
        request,
        "accounts/api_tokens.html",
        {"form": form, "issued": issued, "tokens": request.user.api_tokens.all()},
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["POST"])
def api_token_revoke_view(request, pk: int):
    try:
        token = api_token_revoke(user=request.user, token_id=pk)
    except ApplicationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"“{token.name}” is revoked; calls with it now fail.")
    return redirect("accounts:api_tokens")
