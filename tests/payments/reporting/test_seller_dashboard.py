"""The seller dashboard's one-statement read (payments/reporting/seller_dashboard.py)
against the per-figure readers."""

import pytest
from django.utils import timezone

from marketplace.services.orders import CartItem, place_order
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Los_Angeles", "Asia/Kolkata"])
def test_the_dashboard_s_days_and_month_agree_with_the_readers_away_from_utc(settings, zone):
    """Sound: sales either side of local midnight and of the first of the month land on
    the same local days in the one-statement read as in the per-figure readers."""
    from datetime import UTC, datetime, timedelta

    import time_machine

    from payments.collection.captures import order_payment_captured
    from payments.ledger.balances import seller_balances
    from payments.reporting.earnings import earnings_series
    from payments.reporting.periods import day_start
    from payments.reporting.seller_dashboard import seller_dashboard_read

    settings.TIME_ZONE = zone
    CommissionRuleFactory(percentage_bps=1000, active_from=datetime(2025, 1, 1, tzinfo=UTC))
    seller = SellerFactory()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for hours in range(-40, 14, 3):  # around midnight and the month's edge, local and UTC
        with time_machine.travel(now + timedelta(hours=hours, minutes=-1), tick=False):
            product = ProductFactory(seller=seller, price_minor=1000 + hours, stock=1)
            order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
            order_payment_captured(order=order, processor_fee_minor=7)
    with time_machine.travel(now + timedelta(hours=14), tick=False):
        (panel,) = seller_dashboard_read(seller=seller)
        assert panel.series == earnings_series(
            seller=seller, currency=panel.currency, days=30, weeks=52
        )
        month = day_start(timezone.localdate().replace(day=1))
        assert (panel.balance, panel.paid_this_month) == seller_balances(
            seller=seller, paid_since=month
        )[panel.currency]
        assert sum(p.earned for p in panel.series.daily) == panel.balance.pending
