"""The payout guard (payments/payouts/guard.py): whether a seller's payouts are frozen,
read in one statement."""

import pytest

from payments.models import Payout, PayoutPolicy
from payments.payouts.guard import payout_frozen_reason
from tests.factories import SellerFactory


@pytest.mark.django_db
def test_the_freeze_read_follows_the_sellers_own_policy_else_the_default(seller):
    """One statement for the seller's policy and the default: the seller's own governs
    (frozen or not); the default only for a seller without one."""
    other = SellerFactory()
    mine, theirs = Payout(seller_id=seller.pk), Payout(seller_id=other.pk)
    assert payout_frozen_reason(mine) is None  # no policy rows at all

    PayoutPolicy.objects.create(seller=None, frozen=True, frozen_reason="Platform audit")
    own = PayoutPolicy.objects.create(seller=seller, frozen=False)
    assert payout_frozen_reason(mine) is None  # its own, not frozen, governs
    assert payout_frozen_reason(theirs) == "Payouts frozen: Platform audit"

    own.frozen, own.frozen_reason = True, "KYC"
    own.save()
    PayoutPolicy.objects.filter(seller=None).update(frozen=False)
    assert payout_frozen_reason(mine) == "Payouts frozen: KYC"
    assert payout_frozen_reason(theirs) is None
