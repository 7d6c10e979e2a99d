from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django_countries.fields import CountryField

from accounts.managers import UserManager
from marketplace.kernel.currencies import currency_choices


class User(AbstractBaseUser, PermissionsMixin):
    """A person with a login. Everybody is a customer; see ``accounts.roles`` for the rest."""

    email = models.EmailField("email address", unique=True)
    full_name = models.CharField("full name", max_length=150, blank=True)
    is_staff = models.BooleanField(
        "staff status",
        default=False,
        help_text="Can log in to the admin site (operators).",
    )
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Unselect this instead of deleting the account.",
    )
    date_joined = models.DateTimeField("date joined", default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


RESERVED_SHOP_ADDRESSES = frozenset({"me", "new", "admin", "api"})


def validate_shop_address(value: str) -> None:
    """Some addresses name pages of their own (``/api/v1/sellers/me/``)."""
    if value.lower() in RESERVED_SHOP_ADDRESSES:
        raise ValidationError(f"“{value}” is reserved; choose another address.")


class Seller(models.Model):
    """A user's shop: its public name and storefront, and how it gets paid."""

    class PayoutStatus(models.TextChoices):
        NOT_STARTED = "not_started", "Not started"
        ONBOARDING = "onboarding", "Onboarding"
        ENABLED = "enabled", "Enabled"
        RESTRICTED = "restricted", "Restricted"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="seller"
    )
    display_name = models.CharField(max_length=120)
    slug = models.SlugField(
        max_length=80,
        unique=True,
        validators=[validate_shop_address],
        help_text="Your storefront address: /sellers/<slug>/.",
        error_messages={"unique": "Another seller already uses this address."},
    )
    country = CountryField()
    default_currency = models.CharField(max_length=3, choices=currency_choices())
    payout_account_id = models.CharField(
        max_length=255, blank=True, help_text="The seller's connected account at the processor."
    )
    payout_status = models.CharField(
        max_length=20, choices=PayoutStatus.choices, default=PayoutStatus.NOT_STARTED
    )
    bank_account_holder = models.CharField(
        max_length=140, blank=True, help_text="For manual payouts: the name on the bank account."
    )
    bank_account_number = models.CharField(
        max_length=34, blank=True, help_text="For manual payouts: IBAN or account number."
    )
    bank_routing_code = models.CharField(
        max_length=20, blank=True, help_text="For manual payouts: BIC, sort code or routing number."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["payout_account_id"],
                condition=~models.Q(payout_account_id=""),
                name="accounts_seller_payout_account_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def get_absolute_url(self) -> str:
        return reverse("marketplace:seller_storefront", kwargs={"slug": self.slug})

    @property
    def can_receive_payouts(self) -> bool:
        return self.payout_status == self.PayoutStatus.ENABLED

    @property
    def has_bank_details(self) -> bool:
        return bool(self.bank_account_holder and self.bank_account_number)


class ApiToken(models.Model):
    """A user's API token. Only a hash of the secret is kept; the token is shown once.

    Tokens look like ``mkt_<prefix>_<secret>``: the prefix finds the row, the
    secret's SHA-256 is compared in constant time.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80, help_text="What the token is for, e.g. “Accounting”.")
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} (mkt_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
