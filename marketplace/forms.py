from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from marketplace.kernel.currencies import AmountError, amount_typed_to_minor, currency_choices
from marketplace.models import Category


class CategoryChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Category) -> str:
        return str(obj)


class ProductForm(forms.Form):
    """A seller's product. The price is typed in major units and checked against
    the currency's decimals (12.50 USD, 1500 JPY, 1.250 KWD)."""

    title = forms.CharField(max_length=200)
    category = CategoryChoiceField(
        queryset=Category.objects.select_related("parent"), empty_label="Choose a category"
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    price = forms.CharField(
        max_length=20,
        help_text="For example 12.50; yen have no decimals.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    currency = forms.ChoiceField(choices=currency_choices)
    stock = forms.IntegerField(min_value=0, max_value=1_000_000, initial=1)
    slug = forms.SlugField(
        label="Address",
        max_length=80,
        required=False,
        help_text="The end of the product's web address; leave blank to make one from the title.",
    )
    image = forms.ImageField(required=False, help_text="JPEG, PNG, GIF or WebP.")
    is_active = forms.BooleanField(label="Listed in the shop", required=False, initial=True)

    def clean_image(self):
        image = self.cleaned_data.get("image")
        limit = settings.PRODUCT_IMAGE_MAX_BYTES
        if image and getattr(image, "size", 0) > limit:
            raise forms.ValidationError(f"The image is larger than {filesizeformat(limit)}.")
        return image

    def clean(self):
        cleaned = super().clean()
        price, currency = cleaned.get("price"), cleaned.get("currency")
        if price is not None and currency:
            try:
                cleaned["price_minor"] = amount_typed_to_minor(price, currency)
            except AmountError as exc:
                self.add_error("price", str(exc))
        return cleaned

    def service_fields(self) -> dict:
        """The cleaned values in the shape the product services take."""
        data = self.cleaned_data
        image = data.get("image")  # None: no upload; False: "clear" ticked
        return {
            "title": data["title"],
            "category": data["category"],
            "description": data["description"],
            "price_minor": data["price_minor"],
            "currency": data["currency"],
            "stock": data["stock"],
            "slug": data["slug"],
            "image": "" if image is False else image,
            "is_active": data["is_active"],
        }
