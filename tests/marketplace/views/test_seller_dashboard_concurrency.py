"""The dashboard's figures come from one snapshot: sales committed by other connections
while the page is read never make its balance disagree with its next payout's estimate
(PostgreSQL, read committed: each statement sees what was committed when it started,
so the figures must be read in one statement)."""

import threading

import pytest
from django.db import connection

from marketplace.kernel import task_queue
from marketplace.models import SellerOrder
from payments.reporting.seller_dashboard import seller_dashboard_read
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_tasks(monkeypatch):
    """Tasks queued on commit (emails, webhooks) are not published."""
    monkeypatch.setattr(task_queue, "_publish", lambda task, args, countdown=None: None)


def test_sales_committed_between_statements_leave_the_figures_consistent(seller, no_tasks):
    CommissionRuleFactory(percentage_bps=1000)
    paid_order([(seller, 1000, 1)])  # 9.00 pending

    def sell_elsewhere() -> None:
        """A 20.00 sale (18.00 to the seller), made and committed by another connection."""

        def sell() -> None:
            try:
                paid_order([(seller, 2000, 1)])
            finally:
                connection.close()

        thread = threading.Thread(target=sell)
        thread.start()
        thread.join(30)

    def then_a_sale(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        finally:
            sell_elsewhere()  # after each of the page's statements

    with connection.execute_wrapper(then_a_sale):
        (usd,) = seller_dashboard_read(seller=seller)

    assert SellerOrder.objects.filter(seller=seller).count() == 5  # four made meanwhile
    # The ledger statement saw the first sale and the one committed before it, in the
    # balance and in the pending orders alike.
    assert usd.balance.pending == usd.next.pending == 900 + 1800
    assert sum(day.earned for day in usd.series.daily) == 900 + 1800
