"""The postings of a captured payment and of its processor fee, and what reading their
accounts costs."""

import pytest
from django.test import override_settings

from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import fee_postings, payment_postings
from payments.ledger.posting import Posting, platform_account, seller_account
from payments.models import LedgerAccount
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db

Kind = LedgerAccount.Kind


@pytest.fixture
def order_of_three_sellers():
    CommissionRuleFactory(percentage_bps=1000)
    sellers = [SellerFactory() for _ in range(3)]
    cart = []
    for i, seller in enumerate(sellers):
        product = ProductFactory(seller=seller, price_minor=1000 * (i + 1), stock=5, currency="USD")
        cart.append(CartItem(product.pk, 1))
    order = place_order(customer=UserFactory(), cart_items=cart)
    lines = list(order.lines.select_related("seller_order__seller").order_by("pk"))
    return order, lines, sellers


def test_a_capture_debits_the_processor_and_credits_each_seller_and_the_commission(
    order_of_three_sellers,
):
    order, lines, sellers = order_of_three_sellers

    postings = payment_postings(order, lines)

    processor = platform_account(Kind.PROCESSOR, "USD")
    commission = platform_account(Kind.COMMISSION, "USD")
    expected = [Posting(processor, order.total_minor)]
    for line, seller in zip(lines, sellers, strict=True):
        expected.append(
            Posting(seller_account(seller, Kind.PENDING, "USD"), -line.seller_share_minor, line.pk)
        )
        expected.append(Posting(commission, -line.commission_minor, line.pk))
    assert postings == expected
    assert sum(p.amount_minor for p in postings) == 0


def test_the_accounts_of_a_capture_are_read_in_one_query_once_they_exist(
    order_of_three_sellers, django_assert_num_queries
):
    order, lines, _ = order_of_three_sellers
    first = payment_postings(order, lines)  # makes the five accounts

    with django_assert_num_queries(1):
        again = payment_postings(order, lines)

    assert again == first
    assert LedgerAccount.objects.count() == 5


@pytest.mark.parametrize("payer", ["platform", "sellers"])
def test_the_fee_comes_out_of_the_processor_account_and_goes_to_whoever_bears_it(
    order_of_three_sellers, payer, django_assert_num_queries
):
    order, lines, sellers = order_of_three_sellers
    processor = platform_account(Kind.PROCESSOR, "USD")

    with override_settings(PAYMENTS_PROCESSOR_FEE_PAYER=payer):
        postings = fee_postings(order, lines, 300)
        with django_assert_num_queries(1):
            assert fee_postings(order, lines, 300) == postings

    assert postings[0] == Posting(processor, -300)
    assert sum(p.amount_minor for p in postings) == 0
    if payer == "platform":
        assert postings[1:] == [Posting(platform_account(Kind.PROCESSOR_FEES, "USD"), 300)]
    else:
        assert [(p.account.seller_id, p.order_line_id) for p in postings[1:]] == [
            (seller.pk, line.pk) for seller, line in zip(sellers, lines, strict=True)
        ]
        assert all(p.account.kind == Kind.PENDING for p in postings[1:])
