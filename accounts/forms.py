from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django_countries import countries

from accounts.managers import normalize_email_address
from accounts.models import User
from accounts.services import EMAIL_TAKEN
from marketplace.kernel.currencies import currency_choices


class SignUpForm(BaseUserCreationForm):
    """Email, name and a password checked by the configured password validators."""

    class Meta:
        model = User
        fields = ("email", "full_name")
        widgets = {"email": forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})}

    def clean_email(self) -> str:
        email = normalize_email_address(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(EMAIL_TAKEN)
        return email


class SellerProfileForm(forms.Form):
    """What a shop needs before it can list products."""

    display_name = forms.CharField(label="Shop name", max_length=120)
    slug = forms.SlugField(
        label="Storefront address",
        max_length=80,
        required=False,
        help_text="Letters, numbers and hyphens; leave blank to make one from the shop name.",
    )
    country = forms.ChoiceField(choices=[("", "Choose a country"), *list(countries)])
    default_currency = forms.ChoiceField(
        label="Currency", choices=currency_choices, help_text="The currency you price products in."
    )


class SellerSignUpForm(SignUpForm, SellerProfileForm):
    """A new account that is a seller from the start."""


class ProfileForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False)


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Token name",
        help_text="What will use it, e.g. “Accounting export”. You can revoke it at any time.",
    )
