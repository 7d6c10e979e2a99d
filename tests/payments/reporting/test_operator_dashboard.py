"""The operator console's home dashboard at /admin/ (payments/reporting/operator_dashboard.py)."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marketplace.models import DeferredTask, Order, OrderLine
from payments.collection.refund_requests import refund_request_create, refund_request_decline
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import Dispute, Payout, Refund, WebhookEvent
from payments.reporting.operator_dashboard import operator_dashboard
from tests.factories import CommissionRuleFactory, SellerFactory, UserFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db

HOME = "/admin/"


def _links(html: str) -> list[str]:
    """The hrefs inside the dashboard section of the home page."""
    section = html.split('class="ops-dashboard"', 1)[1].split('<div class="app-', 1)[0]
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', section)]


def _payout(seller, status, amount, **fields):
    return Payout.objects.create(
        seller=seller,
        currency=seller.default_currency,
        amount_minor=amount,
        period=f"p-{Payout.objects.count()}",
        status=status,
        **fields,
    )


def _trade(seller, customer, *, size):
    """``size`` of every kind of row the dashboard counts, in the seller's currency:
    orders paid today, 3 days and 10 days ago, refunds, failed and waiting payouts,
    open disputes, refund requests, webhook events and deferred tasks."""
    now = timezone.now()
    for _ in range(size):
        today = paid_order([(seller, 1000, 1)], customer=customer)
        days_ago = paid_order([(seller, 500, 2)], customer=customer)
        Order.objects.filter(pk=days_ago.pk).update(paid_at=now - timedelta(days=3))
        old = paid_order([(seller, 700, 1)], customer=customer)
        Order.objects.filter(pk=old.pk).update(paid_at=now - timedelta(days=10))
        refund_mark_succeeded(refund=refund_create(order=today, amount_minor=300))
        earlier = refund_create(order=old, amount_minor=100)
        refund_mark_succeeded(refund=earlier)
        Refund.objects.filter(pk=earlier.pk).update(created_at=now - timedelta(days=10))
        refund_request_create(
            customer=customer,
            order_line=OrderLine.objects.get(order=days_ago),
            reason="Arrived chipped.",
        )
        refund_request_decline(
            request=refund_request_create(
                customer=customer,
                order_line=OrderLine.objects.get(order=old),
                reason="Wrong colour.",
            ),
            by=seller.user,
        )
        Dispute.objects.create(
            order=old,
            processor="local",
            processor_dispute_id=f"dp_{old.pk}",
            amount_minor=700,
            currency=old.currency,
        )
        Dispute.objects.create(
            order=today,
            processor="local",
            processor_dispute_id=f"dp_{today.pk}",
            amount_minor=1000,
            currency=today.currency,
            status=Dispute.Status.WON,
        )
        _payout(seller, Payout.Status.FAILED, 400, failed_at=now)
        _payout(seller, Payout.Status.FAILED, 900, failed_at=now - timedelta(days=20))
        _payout(seller, Payout.Status.AWAITING_APPROVAL, 250_000)
        _payout(seller, Payout.Status.SENDING, 1200, attention_reason="Not through after 24 hours")
        _payout(seller, Payout.Status.PAID, 800)
    for n in range(size):
        for status in WebhookEvent.Status.values:
            WebhookEvent.objects.create(
                processor="local",
                event_id=f"evt_{WebhookEvent.objects.count()}",
                type="payment_intent.succeeded",
                payload="{}",
                status=status,
            )
        DeferredTask.objects.create(task="payments.tasks.payout_send_task", args=[n])


@pytest.fixture
def trading(seller, customer):
    CommissionRuleFactory(percentage_bps=1000)
    _trade(seller, customer, size=1)
    return seller


def test_figures_are_todays_and_the_last_7_days_per_currency(trading):
    dashboard = operator_dashboard(now=timezone.now())

    (usd,) = dashboard.currencies
    assert usd.currency == "USD"
    assert (usd.today.sales.count, usd.today.sales.amount_minor) == (1, 1000)
    assert usd.today.commission.amount_minor == 100
    # 10.00 today and 2 × 5.00 three days ago; not the order paid 10 days ago.
    assert (usd.last_7_days.sales.count, usd.last_7_days.sales.amount_minor) == (2, 2000)
    assert usd.last_7_days.commission.amount_minor == 200
    assert (usd.today.refunds.count, usd.today.refunds.amount_minor) == (1, 300)
    assert (usd.today.payouts_failed.count, usd.today.payouts_failed.amount_minor) == (1, 400)
    assert usd.last_7_days.payouts_failed.count == 1  # not the one 20 days ago
    assert (usd.disputes_open.count, usd.disputes_open.amount_minor) == (1, 700)
    assert usd.payouts_awaiting_approval.amount_minor == 250_000
    assert (usd.payouts_needing_attention.count, usd.payouts_needing_attention.amount_minor) == (
        1,
        1200,
    )
    backlog = dashboard.backlog
    assert backlog.refund_requests_waiting.count == 1
    assert (backlog.webhooks_waiting.count, backlog.webhooks_failed.count) == (1, 1)
    assert backlog.deferred_tasks.count == 1
    assert backlog.deferred_tasks.oldest is not None


def test_each_currency_has_its_own_figures(trading, customer):
    euro_shop = SellerFactory(default_currency="EUR")
    paid_order([(euro_shop, 4000, 1)], customer=customer)

    usd, eur = operator_dashboard(now=timezone.now()).currencies

    assert (usd.currency, usd.today.sales.amount_minor) == ("USD", 1000)
    assert (eur.currency, eur.today.sales.amount_minor, eur.today.sales.currency) == (
        "EUR",
        4000,
        "EUR",
    )
    assert eur.disputes_open.count == 0
    assert "currency__exact=EUR" in eur.today.sales.url


def test_the_last_7_days_start_at_midnight_six_days_ago(db):
    now = timezone.now()

    dashboard = operator_dashboard(now=now)

    week = dashboard.last_7_days
    assert (week.last_day - week.first_day).days == 6
    assert week.since.time().hour == 0 and week.until - week.since == timedelta(days=7)
    assert dashboard.today.since <= now < dashboard.today.until


def test_every_figure_links_to_a_list_of_exactly_the_rows_it_counts(operator_client, trading):
    dashboard = operator_dashboard(now=timezone.now())
    (usd,) = dashboard.currencies
    figures = [
        usd.today.sales,
        usd.last_7_days.sales,
        usd.today.refunds,
        usd.last_7_days.refunds,
        usd.today.payouts_failed,
        usd.last_7_days.payouts_failed,
        usd.disputes_open,
        usd.payouts_awaiting_approval,
        usd.payouts_needing_attention,
        dashboard.backlog.refund_requests_waiting,
        dashboard.backlog.webhooks_waiting,
        dashboard.backlog.webhooks_failed,
    ]

    for figure in figures:
        response = operator_client.get(figure.url)
        assert response.status_code == 200, figure.url  # an unknown lookup redirects to ?e=1
        assert response.context["cl"].result_count == figure.count, figure.url
        # Filtered: the data holds rows of each model that the figure does not count.
        assert response.context["cl"].result_count < response.context["cl"].full_result_count
    deferred = operator_client.get(dashboard.backlog.deferred_tasks.url)  # all of them
    assert deferred.context["cl"].result_count == dashboard.backlog.deferred_tasks.count == 1


def test_every_link_on_the_home_page_opens_without_a_lookup_error(operator_client, trading):
    page = operator_client.get(HOME)

    assert page.status_code == 200
    links = _links(page.content.decode())
    assert len(links) == 16  # 2 × 4 in the periods, 3 open now, 4 queues, reconciliation
    for link in links:
        response = operator_client.get(link)
        assert response.status_code == 200, link
        assert "e=1" not in link and b"?e=1" not in response.content, link


def test_the_home_page_shows_amounts_in_the_currency_not_minor_units(operator_client, trading):
    html = operator_client.get(HOME).content.decode()

    assert "$2,500.00" in html  # the payout awaiting approval
    assert "250000" not in html
    assert "Payouts awaiting approval" in html


def test_the_home_page_keeps_the_app_list(operator_client, trading):
    html = operator_client.get(HOME).content.decode()

    for name in ("Refund requests", "Revenue report", "Reconciliation", "Payouts"):
        assert f">{name}</a>" in html


def test_the_dashboard_says_so_when_nothing_happened(operator_client):
    html = operator_client.get(HOME).content.decode()

    assert "No order was paid" in html
    assert "Reconcile the last 7 days" in html


def test_the_dashboards_queries_do_not_grow_with_rows_or_currencies(
    operator_client, seller, customer, count_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    _trade(seller, customer, size=1)
    now = timezone.now()
    small = count_queries(lambda: operator_dashboard(now=now))
    with CaptureQueriesContext(connection) as small_page:
        assert operator_client.get(HOME).status_code == 200

    _trade(seller, customer, size=6)
    for currency in ("EUR", "GBP", "JPY"):
        _trade(SellerFactory(default_currency=currency), customer, size=2)
    assert len(operator_dashboard(now=now).currencies) == 4
    large = count_queries(lambda: operator_dashboard(now=now))
    with CaptureQueriesContext(connection) as large_page:
        assert operator_client.get(HOME).status_code == 200

    # orders, refunds, payouts, disputes, three queues and the last reconciliation kept
    assert small == large == 8
    assert len(small_page) == len(large_page)


def test_an_operator_sees_no_figure_on_a_model_they_may_not_view(client, trading):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=("marketplace", "payments"), codename__startswith="view_"
        ).exclude(codename__in=("view_payout", "view_order"))
    )
    client.force_login(clerk)

    html = client.get(HOME).content.decode()

    links = _links(html)
    assert not [link for link in links if "/payments/payout/" in link or "/order/" in link]
    assert any("/payments/refund/" in link for link in links)
    assert "Payouts awaiting approval" not in html and "Sales" not in html
    for link in links:
        assert client.get(link).status_code == 200, link


def test_the_selector_leaves_out_what_the_operator_may_not_view(trading):
    dashboard = operator_dashboard(now=timezone.now(), can_view=lambda model: model is not Payout)

    (usd,) = dashboard.currencies
    assert usd.payouts_awaiting_approval is None and usd.today.payouts_failed is None
    assert usd.today.sales is not None
    assert reverse("admin:payments_reconciliationreport_changelist") in (
        dashboard.reconciliation_url or ""
    )


def test_the_last_reconciliation_kept_shows_its_differences(operator_client, run, seller):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from payments.models import ReconciliationRun
    from payments.reporting.reconciliation import reconciliation_record
    from payments.tasks import reconcile_task

    before = operator_client.get(reverse("admin:index")).content.decode()
    assert "no reconciliation kept yet" in before

    until = timezone.now()
    reconciliation_record(since=until - timedelta(days=1), until=until, via="admin")
    run(reconcile_task)
    call_command("reconcile", "--hours", "24")

    runs = list(ReconciliationRun.objects.order_by("pk"))
    assert [r.via for r in runs] == ["admin", "beat", "command"]
    assert all(r.difference_count == 0 and r.differences == [] for r in runs)
    # A day the ledger and the processor disagree on.
    ReconciliationRun.objects.create(
        since=until - timedelta(days=1),
        until=until,
        via="beat",
        matched=3,
        difference_count=2,
        differences=[{"movement": "charge", "processor_id": "ch_1", "currency": "USD"}],
    )
    page = operator_client.get(reverse("admin:index")).content.decode()
    assert '2<span class="visually-hidden"> differences at the last reconciliation' in page
    assert 'class="ops-alert"' in page and "(beat," in page
