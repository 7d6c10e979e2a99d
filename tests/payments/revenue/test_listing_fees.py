"""Listing fees: which fee applies, one charge per listing period, renewals, validation."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from marketplace.models import Product
from marketplace.services.products import (
    product_create,
    product_set_active,
    products_set_active_bulk,
)
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import AuditRecord, LedgerTransaction, ListingCharge, ListingFee
from payments.revenue.listing_fees import (
    listing_fee_for,
    listing_fee_save,
    listings_renew_due,
    product_listing_charge,
)
from tests.factories import CategoryFactory, ListingFeeFactory, ProductFactory

pytestmark = pytest.mark.django_db

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


def _available(seller, currency="USD"):
    return seller_balance(seller=seller, currency=currency).available


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"amount_minor": -1}, "amount_minor"),
        ({"amount_minor": 0.5}, "amount_minor"),
        ({"currency": "XXX"}, "currency"),
        ({"scope": "category"}, "category"),
        ({"listing_days": 0}, "listing_days"),
    ],
)
def test_a_bad_listing_fee_is_refused_and_nothing_is_saved(operator, values, field):
    fee = ListingFee(scope="default", currency="USD", amount_minor=50, listing_days=30)
    for name, value in values.items():
        setattr(fee, name, value)

    with pytest.raises(ValidationError) as error:
        listing_fee_save(fee=fee, by=operator, reason="launch")

    assert field in error.value.message_dict
    assert not ListingFee.objects.exists()


def test_a_default_fee_with_a_category_is_refused(operator, category):
    with pytest.raises(ValidationError):
        listing_fee_save(
            fee=ListingFee(scope="default", category=category, currency="USD", amount_minor=5),
            by=operator,
        )
    assert not ListingFee.objects.exists()


def test_saving_a_listing_fee_is_audited(operator, category):
    fee = listing_fee_save(
        fee=ListingFee(scope="category", category=category, currency="JPY", amount_minor=100),
        by=operator,
        reason="books cost more",
    )

    assert fee.pk
    assert AuditRecord.objects.get().reason == "books cost more"


def test_the_categorys_fee_beats_the_default_in_the_products_currency(seller):
    books = CategoryFactory()
    ListingFeeFactory(amount_minor=50)
    category_fee = ListingFeeFactory(scope="category", category=books, amount_minor=80)
    ListingFeeFactory(scope="category", category=books, currency="EUR", amount_minor=90)
    product = ProductFactory(seller=seller, category=books)
    other = ProductFactory(seller=seller)
    euro = ProductFactory(seller=seller, currency="EUR", category=CategoryFactory())

    assert listing_fee_for(product=product) == category_fee
    assert listing_fee_for(product=other).amount_minor == 50
    assert listing_fee_for(product=euro) is None  # the USD default does not apply


def test_a_parent_categorys_fee_applies_to_its_children(seller):
    parent = CategoryFactory()
    fee = ListingFeeFactory(scope="category", category=parent, amount_minor=70)
    ListingFeeFactory(amount_minor=50)
    product = ProductFactory(seller=seller, category=CategoryFactory(parent=parent))

    assert listing_fee_for(product=product) == fee


def test_a_fee_not_yet_active_or_ended_does_not_apply(seller):
    ListingFeeFactory(active_from=DEC_1 + timedelta(days=1))
    ListingFeeFactory(active_from=DEC_1 - timedelta(days=10), active_until=DEC_1)
    product = ProductFactory(seller=seller)

    assert listing_fee_for(product=product, at=DEC_1) is None


def test_creating_an_active_product_charges_its_listing_fee(seller, category):
    ListingFeeFactory(amount_minor=50, listing_days=30)

    product = product_create(
        seller=seller, title="Lamp", category=category, price_minor=1000, currency="USD", stock=1
    )

    charge = ListingCharge.objects.get()
    assert (charge.product, charge.kind, charge.amount_minor) == (product, "listed", 50)
    assert charge.ledger_transaction.kind == "listing_fee"
    product.refresh_from_db()
    assert product.listed_until == charge.listed_until == charge.listed_from + timedelta(days=30)
    assert _available(seller) == -50
    assert ledger_check().problems == []


def test_a_product_created_hidden_or_with_no_fee_is_not_charged(seller, category):
    product_create(
        seller=seller, title="A", category=category, price_minor=1, currency="USD", stock=1
    )
    ListingFeeFactory()
    hidden = product_create(
        seller=seller,
        title="B",
        category=category,
        price_minor=1,
        currency="USD",
        stock=1,
        is_active=False,
    )

    assert not ListingCharge.objects.exists()
    assert hidden.listed_until is None


def test_listing_again_charges_only_after_the_listing_ended(seller):
    ListingFeeFactory(amount_minor=50)
    product = ProductFactory(seller=seller, is_active=False)

    product_set_active(product=product, seller=seller, active=True)
    product_set_active(product=product, seller=seller, active=False)
    product_set_active(product=product, seller=seller, active=True)  # still listed

    assert ListingCharge.objects.count() == 1


def test_charging_the_same_listing_twice_charges_once(seller):
    ListingFeeFactory(amount_minor=50)
    product = ProductFactory(seller=seller)

    first = product_listing_charge(product=product, at=DEC_1)
    again = product_listing_charge(product=product, at=DEC_1)

    assert first is not None and again is None
    assert LedgerTransaction.objects.count() == 1


def test_renewal_charges_the_next_period_back_to_back(seller):
    ListingFeeFactory(amount_minor=50, listing_days=10)
    product = ProductFactory(seller=seller)
    first = product_listing_charge(product=product, at=DEC_1)

    assert listings_renew_due(now=DEC_1 + timedelta(days=5)) == 0
    assert listings_renew_due(now=DEC_1 + timedelta(days=10, hours=1)) == 1
    assert listings_renew_due(now=DEC_1 + timedelta(days=10, hours=2)) == 0

    renewal = ListingCharge.objects.get(kind="renewed")
    assert renewal.listed_from == first.listed_until
    assert renewal.listed_until == DEC_1 + timedelta(days=20)
    assert _available(seller) == -100
    assert ledger_check().problems == []


def test_a_hidden_product_is_not_renewed(seller):
    ListingFeeFactory(listing_days=1)
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=DEC_1)
    product_set_active(product=product, seller=seller, active=False)

    assert listings_renew_due(now=DEC_1 + timedelta(days=3)) == 0


def test_a_zero_fee_records_the_listing_with_no_ledger_transaction(seller):
    ListingFeeFactory(amount_minor=0)
    product = ProductFactory(seller=seller)

    charge = product_listing_charge(product=product, at=DEC_1)

    assert (charge.amount_minor, charge.ledger_transaction) == (0, None)
    assert not LedgerTransaction.objects.exists()
    assert ledger_check().problems == []


@pytest.mark.django_db
def test_an_operator_listing_products_again_charges_no_period_they_were_hidden(seller):
    """Listed 100 days ago for 30 days and hidden by the seller within those 30 days (the
    daily renewals skip a hidden product, so its listing ended 70 days ago: the state
    below); an operator lists it again today with the admin's bulk action."""
    ListingFeeFactory(listing_days=30, amount_minor=50)
    now = timezone.now()
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=now - timedelta(days=100))
    product_set_active(product=product, seller=seller, active=False)

    products_set_active_bulk(products=Product.objects.filter(pk=product.pk), active=True)
    for _ in range(3):  # the daily renewals that follow
        listings_renew_due(now=timezone.now())

    product.refresh_from_db()
    hidden_until = now - timedelta(seconds=5)
    charged_while_hidden = ListingCharge.objects.filter(
        product=product, listed_from__gt=now - timedelta(days=100), listed_from__lt=hidden_until
    )
    assert not charged_while_hidden.exists(), list(
        charged_while_hidden.values_list("listed_from", "listed_until")
    )
    assert product.listed_until is not None and product.listed_until > timezone.now()


@pytest.mark.django_db
def test_listing_again_after_a_hidden_spell_starts_a_new_period_now(seller):
    ListingFeeFactory(listing_days=30, amount_minor=50)
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=timezone.now() - timedelta(days=100))
    product_set_active(product=product, seller=seller, active=False)

    before = timezone.now().replace(microsecond=0)
    product_set_active(product=product, seller=seller, active=True)
    assert listings_renew_due(now=timezone.now()) == 0

    latest = ListingCharge.objects.filter(product=product).order_by("-listed_from").first()
    assert latest.kind == "listed" and latest.listed_from >= before
    assert ListingCharge.objects.filter(product=product).count() == 2
    assert ledger_check().problems == []
