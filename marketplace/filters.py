"""Filters for product lists (django-filter), shared by pages and, later, the API."""

import django_filters
from django.db.models import Q

from marketplace.models import Category, Product
from marketplace.selectors.catalog import category_and_children_q


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
    seller = django_filters.CharFilter(field_name="seller__slug", label="Seller", max_length=80)
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
        fields = ["q", "category", "seller"]

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))

    def filter_category(self, queryset, name, value):
        return queryset.filter(category_and_children_q(value)) if value else queryset
