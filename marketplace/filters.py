"""Filters for product lists (django-filter), shared by pages and, later, the API."""

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import django_filters
from django import forms
from django.db.models import Q

from accounts.models import Seller
from marketplace.kernel.currencies import MAX_MAJOR_UNITS, SUPPORTED_CURRENCIES, exponent
from marketplace.models import Category, Product
from marketplace.selectors.catalog import category_and_children_q


def price_at_least_q(amount: Decimal) -> Q:
    """Products priced at ``amount`` or more in their own currency's major units
    (10 means 10.00 USD, 10 JPY, 10.000 KWD)."""
    return _price_q(amount, "gte", ROUND_CEILING)


def price_at_most_q(amount: Decimal) -> Q:
    """Products priced at ``amount`` or less in their own currency's major units."""
    return _price_q(amount, "lte", ROUND_FLOOR)


def _price_q(amount: Decimal, lookup: str, rounding: str) -> Q:
    condition = Q()
    for currency in SUPPORTED_CURRENCIES:
        minor = int(amount.scaleb(exponent(currency)).to_integral_value(rounding=rounding))
        condition |= Q(currency=currency, **{f"price_minor__{lookup}": minor})
    return condition


class ProductFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            self.add_error("max_price", "Enter a highest price at or above the lowest price.")
        return data


class ProductOrderingFilter(django_filters.OrderingFilter):
    """Orderings that page cleanly and compare prices only within a currency.

    Amounts in different currencies are not comparable (1500 JPY is less than
    15.00 EUR), so a price sort groups products by currency first. The primary
    key is the last tie-breaker, so pages never overlap.
    """

    def filter(self, qs, value):
        ordering = list(super().filter(qs, value).query.order_by)
        if not ordering:
            return qs
        if any(field.lstrip("-") == "price_minor" for field in ordering):
            ordering.insert(0, "currency")
        return qs.order_by(*ordering, "-id")


class ProductFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Search", method="filter_search", max_length=200)
    category = django_filters.ModelChoiceFilter(
        queryset=Category.objects.select_related("parent"),
        to_field_name="slug",
        method="filter_category",
        empty_label="All categories",
    )
    seller = django_filters.ModelChoiceFilter(
        queryset=Seller.objects.filter(products__is_active=True)
        .distinct()
        .order_by("display_name"),
        to_field_name="slug",
        field_name="seller",
        empty_label="All sellers",
    )
    min_price = django_filters.NumberFilter(
        label="Lowest price",
        method="filter_min_price",
        min_value=0,
        max_value=MAX_MAJOR_UNITS,
        decimal_places=3,
    )
    max_price = django_filters.NumberFilter(
        label="Highest price",
        method="filter_max_price",
        min_value=0,
        max_value=MAX_MAJOR_UNITS,
        decimal_places=3,
    )
    in_stock = django_filters.BooleanFilter(
        label="In stock only", method="filter_in_stock", widget=forms.CheckboxInput
    )
    sort = ProductOrderingFilter(
        label="Sort by",
        fields=(("created_at", "created"), ("price_minor", "price"), ("title", "title")),
        choices=(
            ("-created", "Newest first"),
            ("price", "Price: low to high"),
            ("-price", "Price: high to low"),
            ("title", "Name: A to Z"),
        ),
        empty_label=None,
        null_label=None,
    )

    class Meta:
        model = Product
        fields = ["q", "category", "seller", "min_price", "max_price", "in_stock"]
        form = ProductFilterForm

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))

    def filter_category(self, queryset, name, value):
        return queryset.filter(category_and_children_q(value)) if value else queryset

    def filter_min_price(self, queryset, name, value):
        return queryset.filter(price_at_least_q(value)) if value is not None else queryset

    def filter_max_price(self, queryset, name, value):
        return queryset.filter(price_at_most_q(value)) if value is not None else queryset

    def filter_in_stock(self, queryset, name, value):
        return queryset.filter(stock__gt=0) if value else queryset
