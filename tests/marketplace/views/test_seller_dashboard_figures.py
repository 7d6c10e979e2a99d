"""Every figure of the seller dashboard, for a seller with money in three currencies,
refunds before and after payouts, a lost dispute, payouts paid, a debt and a rolling
reserve, equals what independent sums over the ledger entries say, and what the
per-figure readers used by other pages say; the page reads it in a fixed number of
statements whatever the history."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.kernel.currencies import format_amount
from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.balances import seller_balances
from payments.models import Dispute, LedgerEntry, PayoutPolicy, Refund
from payments.payouts.runs import run_payouts
from payments.processors.local import CARD_DISPUTED, LocalProcessor
from payments.reporting.earnings import (
    EARNING_KINDS,
    SELLER_SIDE,
    commission_terms_for,
    earnings_series,
    seller_debt,
)
from payments.reporting.earnings_schedule import next_payout_estimate
from payments.reporting.seller_dashboard import seller_dashboard_read
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory
from tests.money_helpers import enable_payouts, pay_by_card

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # a Friday, after the day's payout run


def sale(seller, price, currency, *, fee=0):
    product = ProductFactory(seller=seller, price_minor=price, stock=1, currency=currency)
    order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
    order_payment_captured(order=order, processor_fee_minor=fee)
    order.refresh_from_db()
    return order


def at(days_ago, hour=3):
    return time_machine.travel(
        (NOW - timedelta(days=days_ago)).replace(hour=hour, minute=0), tick=False
    )


@pytest.fixture
def trader(run):
    """A GBP seller (their default currency, in which they never sold) who sells in USD
    and EUR. USD: a sale paid out, a sale refunded in part inside its hold then paid
    out, a sale charged back (dispute lost), the first sale then refunded in large part
    (more than is available: a debt) and a sale still in its hold.
    EUR: a sale paid out, one released but not paid yet, one in its hold, a refund
    pending on the released one. A 10 % rolling reserve over 30 days."""
    seller = SellerFactory(default_currency="GBP")
    enable_payouts(seller)
    PayoutPolicy.objects.create(seller=seller, reserve_bps=1000, reserve_days=30)
    CommissionRuleFactory(percentage_bps=1000, active_from=NOW - timedelta(days=400))
    CommissionRuleFactory(
        scope="seller", seller=seller, percentage_bps=800, currency="EUR",
        active_from=NOW - timedelta(days=400),
    )  # fmt: skip
    with at(75):
        paid_out = sale(seller, 10000, "USD", fee=320)
        sale(seller, 5000, "EUR")
    with at(66, hour=7):  # after the hold: released and paid in the day's run
        run(run_payouts)
    with at(12):
        refunded_in_hold = sale(seller, 20000, "USD")
        released_unpaid = sale(seller, 4000, "EUR")
    with at(11):
        run(refund_mark_succeeded, refund=refund_create(order=refunded_in_hold, amount_minor=5000))
    with at(4, hour=7):
        run(run_payouts)  # releases the holds of 12 days ago; the debt and reserve keep
    with at(3):
        refund_create(order=released_unpaid, amount_minor=1000)  # pending: claimed
        product = ProductFactory(seller=seller, price_minor=7000, stock=1, currency="USD")
        disputed = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
        pay_by_card(run, disputed, CARD_DISPUTED)
    with at(2):
        dispute = Dispute.objects.get(order=disputed)
        run(LocalProcessor().dispute_close, dispute_id=dispute.processor_dispute_id, won=False)
        run(refund_mark_succeeded, refund=refund_create(order=paid_out, amount_minor=6000))
    with at(1):
        sale(seller, 2500, "USD", fee=100)
        sale(seller, 1200, "EUR")
    return seller


def owed(seller, currency, **filters):
    """What the seller's entries in ``currency`` matching ``filters`` owe them (the
    platform's side, negated), summed from the entries themselves."""
    total = LedgerEntry.objects.filter(
        account__seller=seller, account__currency=currency, **filters
    ).aggregate(total=Sum("amount_minor"))["total"]
    return -(total or 0)


def earned_on(seller, currency, first: date, last: date):
    """Net earnings from the entries created on the local days ``first`` to ``last``."""
    return sum(
        -entry.amount_minor
        for entry in LedgerEntry.objects.filter(
            account__seller=seller,
            account__currency=currency,
            account__kind__in=SELLER_SIDE,
            transaction_kind__in=EARNING_KINDS,
        )
        if first <= timezone.localdate(entry.created_at) <= last
    )


def test_every_figure_equals_sums_of_the_entries(trader):
    with time_machine.travel(NOW, tick=False):
        panels = seller_dashboard_read(seller=trader)
    month = datetime(2026, 3, 1, tzinfo=UTC)

    assert [p.currency for p in panels] == ["EUR", "GBP", "USD"]
    for panel in panels:
        c = panel.currency
        balance = panel.balance
        assert balance.pending == owed(trader, c, account__kind="pending")
        assert balance.available == owed(trader, c, account__kind="available")
        assert balance.in_transit == owed(trader, c, account__kind="in_transit")
        paid = {
            "account__kind": "in_transit",
            "transaction_kind__in": ["payout_paid", "payout_returned"],
        }
        assert balance.paid_out == -owed(trader, c, **paid)
        assert panel.paid_this_month == -owed(trader, c, created_at__gte=month, **paid)
        for period in panel.series.daily:
            assert period.earned == earned_on(trader, c, period.start, period.start)
        for week in panel.series.weekly:
            assert week.earned == earned_on(trader, c, week.start, week.start + timedelta(days=6))
        if balance.available < 0:
            assert panel.debt is not None and panel.debt.amount == -balance.available
        else:
            assert panel.debt is None

    eur, gbp, usd = panels
    # The story, in figures: the scenario did what it says.
    assert usd.balance.available < 0 and usd.debt.reasons[0].startswith("a refund after payout #")
    assert usd.balance.paid_out > 0 and eur.balance.paid_out > 0
    assert usd.balance.pending > 0 and eur.balance.pending > 0 and eur.balance.available > 0
    assert sum(p.earned for p in usd.series.weekly) < sum(
        p.earned for p in usd.series.weekly if p.earned > 0
    )  # the refunds and the lost dispute count against earnings
    assert gbp.balance.pending == gbp.balance.available == gbp.balance.paid_out == 0
    assert eur.next.claimed == 920  # the pending refund's seller part: 10.00 less 8 %
    assert eur.next.reserve > 0 and usd.next.day == date(2026, 3, 21)
    assert eur.commission.percentage_bps == 800 and usd.commission.percentage_bps == 1000


def test_the_figures_equal_those_of_the_readers_other_pages_use(trader):
    with time_machine.travel(NOW, tick=False):
        panels = seller_dashboard_read(seller=trader)
        month = timezone.localdate().replace(day=1)
        balances = seller_balances(
            seller=trader, paid_since=datetime(month.year, month.month, 1, tzinfo=UTC)
        )
        for panel in panels:
            c = panel.currency
            if c in balances:
                assert (panel.balance, panel.paid_this_month) == balances[c]
            assert panel.series == earnings_series(seller=trader, currency=c, days=30, weeks=52)
            assert panel.debt == seller_debt(
                seller=trader, currency=c, available=panel.balance.available
            )
            assert panel.next == next_payout_estimate(
                seller=trader, currency=c, available=panel.balance.available
            )
            assert panel.commission == commission_terms_for(seller=trader, currency=c)


def section(page: str, currency: str) -> str:
    start = page.index(f'<section aria-labelledby="earnings-{currency}">')
    return page[start : page.index("</section>", start)]


def test_the_page_shows_every_figure(trader, client):
    client.force_login(trader.user)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("marketplace:seller_dashboard")).text
        panels = seller_dashboard_read(seller=trader)

    for panel in panels:
        shown, c = section(page, panel.currency), panel.currency
        for amount in (
            panel.balance.pending,
            panel.balance.available,
            panel.balance.in_transit,
            panel.balance.paid_out,
        ):
            assert f">{format_amount(amount, c)}</p>" in shown
        assert f"{format_amount(panel.paid_this_month, c)} this month" in shown
        daily = sum(p.earned for p in panel.series.daily)
        weekly = sum(p.earned for p in panel.series.weekly)
        assert f"Earned in the last 30 days: {format_amount(daily, c)}" in shown
        assert f"Earned in the last 52 weeks: {format_amount(weekly, c)}" in shown
        for period in panel.series.weekly:
            if period.earned:
                assert f'<td class="num">{format_amount(period.earned, c)}</td>' in shown
        if panel.next.day:
            assert f"about <strong>{format_amount(panel.next.amount, c)}</strong>" in shown
    usd = section(page, "USD")
    assert panels[2].debt.text.replace("'", "&#x27;") in usd
    assert "Commission on your sales: 10% per line" in usd
    assert "Commission on your sales: 8% per line" in section(page, "EUR")


def test_the_dashboard_reads_in_four_statements(trader, django_assert_num_queries):
    # The policies, the ledger read, the commission rules, the seller's current plan
    # (its commission replaces the default rule's: payments.reporting.earnings.commission_terms).
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(4):
        panels = seller_dashboard_read(seller=trader)
    assert len(panels) == 3


# What every signed-in page reads (the session, the user and their seller profile, the
# cart's badge in base.html): counted by the pages that own it, not here.
AROUND_THE_PAGE = (
    'FROM "django_session"',
    'FROM "accounts_user"',
    'FROM "accounts_seller"',
    'FROM "marketplace_cartitem"',
)


def test_the_page_runs_four_statements_of_its_own_with_one_currency_or_three(trader, client):
    newcomer = SellerFactory()
    url = reverse("marketplace:seller_dashboard")

    def statements(seller):
        client.force_login(seller.user)
        client.get(url)
        with time_machine.travel(NOW, tick=False), CaptureQueriesContext(connection) as found:
            client.get(url)
        sqls = [query["sql"] for query in found.captured_queries]
        return len(sqls), [sql for sql in sqls if not any(f in sql for f in AROUND_THE_PAGE)]

    (everything, own), (everything_too, own_too) = statements(newcomer), statements(trader)
    # The policies, the ledger read, the commission rules, the seller's current plan. It
    # was 9 with one currency and a rolling reserve (8 without), and 7 or 8 more for each
    # other currency.
    assert len(own) == len(own_too) == 4
    assert everything == everything_too


def test_a_refund_after_payout_is_explained_the_same_by_both_readers(trader):
    assert Refund.objects.filter(status="succeeded").count() == 2
    with time_machine.travel(NOW, tick=False):
        usd = seller_dashboard_read(seller=trader)[2]
    assert (
        usd.debt.reasons
        == seller_debt(seller=trader, currency="USD", available=usd.balance.available).reasons
    )
