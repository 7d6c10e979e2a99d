"""Seller statements: the movements add up from the opening to the closing balance."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.reporting.statements import month_bounds, seller_statement

pytestmark = pytest.mark.django_db


def _today_statement(seller, **kwargs):
    today = timezone.localdate()
    return seller_statement(seller=seller, currency="USD", start=today, end=today, **kwargs)


def test_a_statement_adds_up_from_opening_to_closing(month_of_trading):
    s = _today_statement(month_of_trading)

    assert (s.opening, s.sales, s.commission, s.earnings) == (0, 15000, 1500, 13500)
    assert (s.refunds, s.fees, s.disputes, s.payouts) == (1800, 0, 0, 7200)
    assert s.closing == 13500 - 1800 - 7200 == 4500
    assert s.opening + s.earnings - s.refunds - s.fees - s.disputes - s.payouts + s.adjustments == (
        s.closing
    )


def test_the_next_period_opens_with_the_last_closing(month_of_trading):
    tomorrow = timezone.localdate() + timedelta(days=1)
    s = seller_statement(seller=month_of_trading, currency="USD", start=tomorrow, end=tomorrow)

    assert (s.opening, s.closing, s.earnings) == (4500, 4500, 0)


def test_tax_included_in_the_commission_is_shown(settings, month_of_trading):
    settings.PAYMENTS_COMMISSION_TAX_BPS = 2000  # 20% VAT included
    assert _today_statement(month_of_trading).commission_tax == 250  # 1500 × 20/120


def test_month_bounds():
    assert [str(d) for d in month_bounds("2028-02")] == ["2028-02-01", "2028-02-29"]
    with pytest.raises(ValueError):
        month_bounds("2028-13")


def test_the_statement_page_prints_and_downloads(seller_client, month_of_trading):
    month = timezone.localdate().strftime("%Y-%m")
    page = seller_client.get(reverse("marketplace:seller_statement"), {"month": month})
    download = seller_client.get(
        reverse("marketplace:seller_statement_csv"), {"month": month, "currency": "USD"}
    )
    bad = seller_client.get(reverse("marketplace:seller_statement"), {"month": "soon"})

    assert page.status_code == 200 and "$45.00" in page.text and "Closing balance" in page.text
    (row,) = csv.DictReader(io.StringIO(download.content.decode()))
    assert (row["seller"], row["closing"], row["payouts"]) == ("acme", "4500", "7200")
    assert bad.status_code == 400 and "YYYY-MM" in bad.text


def test_the_statement_api(api_as, month_of_trading, operator):
    today = timezone.localdate().isoformat()
    query = {"start": today, "end": today, "currency": "USD"}

    mine = api_as(month_of_trading.user).get(reverse("api:my-statement"), query)
    theirs = api_as(operator).get(reverse("api:seller-statement", args=["acme"]), query)
    as_csv = api_as(operator).get(reverse("api:seller-statement-csv", args=["acme"]), query)
    denied = api_as(month_of_trading.user).get(
        reverse("api:seller-statement", args=["acme"]), query
    )
    bad = api_as(month_of_trading.user).get(
        reverse("api:my-statement"), {**query, "start": "2027-01-01"}
    )

    assert mine.json() == theirs.json() and mine.json()["closing"] == 4500
    assert as_csv["Content-Type"].startswith("text/csv") and b"4500" in as_csv.content
    assert denied.status_code == 403
    assert bad.status_code == 400
