"""Fixtures shared across test modules (registered from conftest.py)."""

import pytest

from accounts.services import operator_grant
from tests.factories import PASSWORD, CategoryFactory, SellerFactory, UserFactory


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def customer(db):
    return UserFactory(email="customer@example.com")


@pytest.fixture
def seller(db):
    return SellerFactory(user__email="seller@example.com", display_name="Acme", slug="acme")


@pytest.fixture
def other_seller(db):
    return SellerFactory(user__email="other@example.com", display_name="Rival", slug="rival")


@pytest.fixture
def operator(db):
    return operator_grant(user=UserFactory(email="operator@example.com"))


@pytest.fixture
def category(db):
    return CategoryFactory(name="Books", slug="books")


@pytest.fixture
def seller_client(client, seller):
    client.force_login(seller.user)
    return client


@pytest.fixture
def customer_client(client, customer):
    client.force_login(customer)
    return client


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def eager_celery():
    """Run Celery tasks in-process for flow tests (a real worker is tested elsewhere)."""
    from marketplace.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def count_queries():
    """``count_queries(fn)``: how many SQL statements ``fn()`` runs (counted at the cursor)."""
    from django.db import connection

    def count(fn):
        calls = []

        def wrapper(execute, sql, params, many, context):
            calls.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            fn()
        return len(calls)

    return count


@pytest.fixture
def run(eager_celery, django_capture_on_commit_callbacks):
    """``run(fn, ...)``: call ``fn`` and let every task it queues after commit run, as a
    worker would (Celery eager, on-commit callbacks executed)."""

    def call(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


@pytest.fixture
def api_as(db):
    """``api_as(user)``: an API client signed in with a real API token (None: nobody)."""
    from rest_framework.test import APIClient

    from accounts.tokens import api_token_create

    def login(user):
        client = APIClient()
        if user is not None:
            raw = api_token_create(user=user, name="tests").raw
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    return login


@pytest.fixture
def month_of_trading(run, seller):
    """The seller, after two sales (100.00 and 50.00 at 10%), a 20.00 refund of the
    first, its hold released and a payout run: 72.00 paid out, 45.00 pending."""
    from payments.collection.refunds import refund_create, refund_mark_succeeded
    from payments.payouts.holds import seller_order_hold_release
    from payments.payouts.runs import run_payouts
    from tests.factories import CommissionRuleFactory
    from tests.money_helpers import enable_payouts, paid_order

    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    first = paid_order([(seller, 10000, 1)])
    paid_order([(seller, 5000, 1)])
    refund_mark_succeeded(refund=refund_create(order=first, amount_minor=2000))
    seller_order_hold_release(seller_order=first.seller_orders.get())
    run(run_payouts)
    return seller
