"""Payout planning (payments/payouts/planning.py): what a planned payout becomes when it is made."""

import pytest

from payments.ledger.posting import seller_account
from payments.models import Payout
from payments.payouts.planning import PlannedPayout, payout_create

pytestmark = pytest.mark.django_db


def test_a_stale_plan_is_cut_to_what_is_left_under_the_lock(earning):
    Payout.objects.create(
        seller=earning, currency="USD", amount_minor=6000, period="other", status="scheduled"
    )
    plan = PlannedPayout(earning, "USD", 9000, "manual-x", "scheduled")

    created = payout_create(
        plan, account=seller_account(earning, "available", "USD"), run=None, by=None
    )

    assert created.amount_minor == 3000
