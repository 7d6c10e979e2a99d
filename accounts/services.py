"""Services that create and change accounts. Views and commands call these."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.managers import normalize_email_address
from accounts.models import RESERVED_SHOP_ADDRESSES, Seller, User
from accounts.roles import operators_group_sync
from marketplace.kernel.slugs import unique_slug

EMAIL_TAKEN = "An account with this email address already exists."
SLUG_TAKEN = "Another seller already uses this address."


def user_sign_up(*, email: str, password: str, full_name: str = "") -> User:
    """Create a customer account. Email addresses are unique whatever their case."""
    email = normalize_email_address(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": EMAIL_TAKEN})
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password, full_name=full_name)
    except IntegrityError as exc:  # the same address signed up concurrently
        raise ValidationError({"email": EMAIL_TAKEN}) from exc


def _free_shop_address(display_name: str) -> str:
    base = unique_slug(Seller, display_name)
    if base in RESERVED_SHOP_ADDRESSES:
        return unique_slug(Seller, f"{display_name} shop")
    return base


def seller_become(
    *, user: User, display_name: str, country: str, default_currency: str, slug: str = ""
) -> Seller:
    """Give an existing user a seller profile (a user has at most one).

    A blank slug is made from the display name; a slug chosen by the seller
    that another seller uses is refused rather than changed.
    """
    if Seller.objects.filter(user=user).exists():
        raise ValidationError("This account is already a seller.")
    if slug and Seller.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": SLUG_TAKEN})
    seller = Seller(
        user=user,
        display_name=display_name,
        slug=slug or _free_shop_address(display_name),
        country=country,
        default_currency=default_currency,
    )
    seller.full_clean(exclude=["user"])
    try:
        with transaction.atomic():
            seller.save()
    except IntegrityError as exc:  # the same slug or user claimed concurrently
        raise ValidationError({"slug": SLUG_TAKEN}) from exc
    return seller


@transaction.atomic
def seller_sign_up(
    *,
    email: str,
    password: str,
    display_name: str,
    country: str,
    default_currency: str,
    slug: str = "",
    full_name: str = "",
) -> Seller:
    """Create a user and their seller profile together, or neither."""
    user = user_sign_up(email=email, password=password, full_name=full_name)
    return seller_become(
        user=user,
        display_name=display_name,
        country=country,
        default_currency=default_currency,
        slug=slug,
    )


def profile_update(*, user: User, full_name: str) -> User:
    user.full_name = full_name
    user.save(update_fields=["full_name"])
    return user


def operator_grant(*, user: User) -> User:
    """Give a user the operator role: staff, in the Operators group, not superuser."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(operators_group_sync())
    return user
