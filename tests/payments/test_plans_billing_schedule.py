"""Beat bills seller plans hourly and renews listings daily (migration 0036), through
tasks that each call one service."""

import importlib

import pytest
from django.apps import apps
from django_celery_beat.models import PeriodicTask

from payments.models import SellerPlanChoice
from payments.tasks import listings_renew_due_task, seller_plans_bill_task
from tests.factories import SellerPlanFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("payments.migrations.0036_plans_billing_schedule")


def test_the_schedules_bill_plans_hourly_and_renew_listings_daily():
    PeriodicTask.objects.filter(name__in=[name for name, *_ in migration.SCHEDULES]).delete()

    migration.create(apps, None)
    migration.create(apps, None)  # twice: still one of each

    plans = PeriodicTask.objects.get(task="payments.tasks.seller_plans_bill_task")
    listings = PeriodicTask.objects.get(task="payments.tasks.listings_renew_due_task")
    assert (plans.interval.every, plans.interval.period) == (1, "hours")
    assert (listings.interval.every, listings.interval.period) == (1, "days")


def test_the_tasks_call_the_services(seller):
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory())

    assert seller_plans_bill_task() == 1
    assert seller_plans_bill_task() == 0
    assert listings_renew_due_task() == 0
