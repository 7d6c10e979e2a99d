"""Payout controls (payments/payouts/controls.py): hold, release, approve and retry,
each keeping the rules the payout was made under."""

import pytest

from marketplace.kernel.errors import InvalidState
from payments.models import Payout, PayoutPolicy
from payments.payouts.controls import payout_approve, payout_hold, payout_release, payout_retry
from payments.payouts.runs import run_payouts
from payments.payouts.settlement import payout_failed
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_holding_and_releasing_never_skips_the_second_operators_approval(run, earning, operator):
    PayoutPolicy.objects.create(seller=earning, approval_thresholds={"USD": 1000})
    run(run_payouts, started_by=operator)
    payout = Payout.objects.get()

    run(payout_hold, payout=payout, by=operator, reason="Check")
    released = run(payout_release, payout=payout, by=operator)

    assert released.status == "awaiting_approval"
    with pytest.raises(InvalidState):
        payout_approve(payout=payout, by=operator)
    approved = run(payout_approve, payout=payout, by=UserFactory(is_staff=True))
    assert approved.status == "scheduled"


def test_a_retry_follows_the_freeze_and_the_reserve(run, earning, operator):
    policy = PayoutPolicy.objects.create(seller=earning, reserve_bps=5000)
    payout = run_payouts().created[0]  # not sent: its task runs after a commit
    assert payout.amount_minor == 4500
    payout_failed(payout=payout, reason="Bank said no")

    policy.frozen, policy.frozen_reason = True, "Fraud review"
    policy.save()
    with pytest.raises(InvalidState, match="frozen"):
        payout_retry(payout=payout, by=operator)

    policy.frozen = False
    policy.save()
    retried = run(payout_retry, payout=payout, by=operator)
    assert retried.amount_minor == 4500  # the reserve stays kept back
