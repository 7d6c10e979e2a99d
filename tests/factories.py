"""factory-boy factories for every model the tests build."""

from datetime import UTC, datetime

import factory
from factory.django import DjangoModelFactory, Password

from accounts.models import Seller, User
from marketplace.models import Category, Product

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = Password(PASSWORD)


class SellerFactory(DjangoModelFactory):
    class Meta:
        model = Seller

    user = factory.SubFactory(UserFactory)
    display_name = factory.Sequence(lambda n: f"Shop {n}")
    slug = factory.Sequence(lambda n: f"shop-{n}")
    country = "US"
    default_currency = "USD"


class CategoryFactory(DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(DjangoModelFactory):
    class Meta:
        model = Product

    seller = factory.SubFactory(SellerFactory)
    category = factory.SubFactory(CategoryFactory)
    title = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    description = "A fine thing."
    price_minor = 1250
    currency = factory.SelfAttribute("seller.default_currency")
    stock = 5


class CommissionRuleFactory(DjangoModelFactory):
    class Meta:
        model = "payments.CommissionRule"

    scope = "default"
    percentage_bps = 1000
    fixed_fee_minor = 0
    currency = ""


class SellerPlanFactory(DjangoModelFactory):
    class Meta:
        model = "payments.SellerPlan"

    name = factory.Sequence(lambda n: f"Plan {n}")
    currency = "USD"
    monthly_fee_minor = 2900
    commission_bps = 500
    is_offered = True


class ListingFeeFactory(DjangoModelFactory):
    class Meta:
        model = "payments.ListingFee"

    scope = "default"
    currency = "USD"
    amount_minor = 50
    listing_days = 30
    active_from = factory.LazyFunction(lambda: datetime(2020, 1, 1, tzinfo=UTC))


class ServiceFeeFactory(DjangoModelFactory):
    class Meta:
        model = "payments.ServiceFee"

    name = "Service fee"
    currency = "USD"
    percentage_bps = 250
    fixed_fee_minor = 0
    active_from = factory.LazyFunction(lambda: datetime(2020, 1, 1, tzinfo=UTC))
