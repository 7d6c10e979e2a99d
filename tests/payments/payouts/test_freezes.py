"""Freezing and unfreezing a seller's payouts with a reason: one service
(``seller_freeze`` / ``seller_unfreeze``), called by the seller's admin page."""

import pytest
from django.urls import reverse

from marketplace.kernel.errors import InvalidRequest, InvalidState
from payments.models import AuditRecord, Payout, PayoutPolicy
from payments.payouts.controls import payout_release
from payments.payouts.freezes import payout_policy_save, seller_freeze, seller_unfreeze
from payments.payouts.guard import PayoutStopped
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Status = Payout.Status


def _payout(seller, amount, period, status=Status.SCHEDULED, currency="USD"):
    return Payout.objects.create(
        seller=seller, currency=currency, amount_minor=amount, period=period, status=status
    )


@pytest.fixture
def open_payouts(seller):
    return [
        _payout(seller, 10000, "2026-11-01"),
        _payout(seller, 5000, "2026-11-02", status=Status.AWAITING_APPROVAL),
        _payout(seller, 2500, "2026-11-03", status=Status.PAID),
    ]


def _statuses(payouts):
    return [Payout.objects.get(pk=p.pk).status for p in payouts]


def test_freezing_a_seller_makes_their_own_policy_from_the_default_and_holds_open_payouts(
    seller, operator, open_payouts
):
    payout_policy_save(
        policy=PayoutPolicy(seller=None, schedule="weekly", hold_days=3, minimums={"USD": 2500}),
        reason="platform terms",
    )

    outcome = seller_freeze(seller=seller, by=operator, reason="Chargebacks above 1%", via="admin")

    assert (outcome.changed, outcome.payouts_held) == (True, 2)
    own = PayoutPolicy.objects.get(seller=seller)
    assert (own.frozen, own.frozen_reason) == (True, "Chargebacks above 1%")
    assert (own.schedule, own.hold_days, own.minimums) == ("weekly", 3, {"USD": 2500})
    assert not PayoutPolicy.objects.get(seller=None).frozen  # the default is untouched
    assert _statuses(open_payouts) == [Status.HELD, Status.HELD, Status.PAID]
    on_seller = AuditRecord.objects.get(action="freeze")
    assert (on_seller.target, on_seller.actor, on_seller.via, on_seller.reason) == (
        seller,
        operator,
        "admin",
        "Chargebacks above 1%",
    )
    on_policy = AuditRecord.objects.get(object_id=own.pk, action="created")
    assert on_policy.changes["frozen"] == [None, True]
    assert AuditRecord.objects.filter(action="hold", via="system").count() == 2


def test_freezing_a_seller_with_a_policy_changes_only_the_freeze(seller, operator, open_payouts):
    policy = PayoutPolicy.objects.create(seller=seller, reserve_bps=1000)

    seller_freeze(seller=seller, by=operator, reason="Fraud review")

    change = AuditRecord.objects.get(object_id=policy.pk, action="changed")
    assert change.changes == {"frozen": [False, True], "frozen_reason": ["", "Fraud review"]}
    assert PayoutPolicy.objects.get().reserve_bps == 1000


def test_freezing_a_frozen_seller_says_so_and_changes_nothing(seller, operator, open_payouts):
    seller_freeze(seller=seller, by=operator, reason="Fraud review")
    records = AuditRecord.objects.count()
    _payout(seller, 700, "2026-11-04")  # a payout made since would not be held either

    again = seller_freeze(seller=seller, by=operator, reason="Another reason")

    assert (again.changed, again.payouts_held) == (False, 0)
    assert "already frozen" in again.message and "Fraud review" in again.message
    assert AuditRecord.objects.count() == records
    assert PayoutPolicy.objects.get(seller=seller).frozen_reason == "Fraud review"


def test_a_seller_frozen_by_the_default_is_already_frozen(seller, operator):
    payout_policy_save(policy=PayoutPolicy(seller=None, frozen=True, frozen_reason="Incident"))

    outcome = seller_freeze(seller=seller, by=operator, reason="Fraud review")
    with pytest.raises(InvalidState, match="platform default"):
        seller_unfreeze(seller=seller, by=operator, reason="Cleared")

    assert not outcome.changed and "platform default" in outcome.message
    assert not PayoutPolicy.objects.filter(seller=seller).exists()
    assert not AuditRecord.objects.filter(object_id=seller.pk, action__contains="freeze").exists()


def test_a_freeze_needs_a_reason_and_without_one_nothing_changes(seller, operator, open_payouts):
    with pytest.raises(InvalidRequest, match="reason"):
        seller_freeze(seller=seller, by=operator, reason="   ")

    assert not PayoutPolicy.objects.exists()
    assert not AuditRecord.objects.exists()
    assert _statuses(open_payouts) == [Status.SCHEDULED, Status.AWAITING_APPROVAL, Status.PAID]


def test_unfreezing_does_not_release_held_payouts(seller, operator, open_payouts):
    seller_freeze(seller=seller, by=operator, reason="Fraud review")

    outcome = seller_unfreeze(seller=seller, by=operator, reason="Review passed")

    assert outcome.changed and "stay held" in outcome.message
    policy = PayoutPolicy.objects.get(seller=seller)
    assert (policy.frozen, policy.frozen_reason) == (False, "")
    assert _statuses(open_payouts) == [Status.HELD, Status.HELD, Status.PAID]
    record = AuditRecord.objects.get(action="unfreeze")
    assert (record.target, record.reason, record.changes) == (
        seller,
        "Review passed",
        {"frozen": [True, False]},
    )


def test_release_is_refused_while_frozen(seller, operator, open_payouts):
    seller_freeze(seller=seller, by=operator, reason="Fraud review")

    with pytest.raises(PayoutStopped, match="Unfreeze"):
        payout_release(payout=open_payouts[0], by=operator, reason="try")


def test_unfreezing_a_seller_who_is_not_frozen_changes_nothing(seller, operator):
    outcome = seller_unfreeze(seller=seller, by=operator, reason="just in case")

    assert not outcome.changed and "not frozen" in outcome.message
    assert not PayoutPolicy.objects.exists() and not AuditRecord.objects.exists()


# --- The admin page --------------------------------------------------------------------------


def _url(seller, verb="freeze"):
    return reverse(f"admin:accounts_seller_{verb}", args=[seller.pk])


def test_the_confirmation_page_says_what_freezing_holds(operator_client, seller, open_payouts):
    _payout(seller, 300000, "2026-11-05", currency="JPY")

    page = operator_client.get(_url(seller))

    assert page.status_code == 200
    assert "1 payout totalling ¥300,000 will be held" in page.text
    assert "2 payouts totalling $150.00 will be held" in page.text
    assert not Payout.objects.filter(status=Status.HELD).exists()


def test_freezing_through_the_page_needs_a_reason(operator_client, seller, open_payouts):
    refused = operator_client.post(_url(seller), {"reason": ""})

    assert refused.status_code == 200 and "Give a reason" in refused.text
    assert not PayoutPolicy.objects.exists() and not AuditRecord.objects.exists()
    assert _statuses(open_payouts) == [Status.SCHEDULED, Status.AWAITING_APPROVAL, Status.PAID]


def test_an_operator_freezes_and_unfreezes_through_the_page(
    operator_client, operator, seller, open_payouts
):
    frozen = operator_client.post(_url(seller), {"reason": "Chargebacks above 1%"}, follow=True)

    assert frozen.redirect_chain[-1][0] == reverse("admin:accounts_seller_change", args=[seller.pk])
    assert "2 open payout(s) held" in frozen.text
    assert "Unfreeze payouts" in frozen.text and "Chargebacks above 1%" in frozen.text
    assert _statuses(open_payouts) == [Status.HELD, Status.HELD, Status.PAID]

    again = operator_client.post(_url(seller), {"reason": "twice"}, follow=True)
    assert "already frozen" in again.text
    assert AuditRecord.objects.filter(action="freeze").count() == 1

    confirm = operator_client.get(_url(seller, "unfreeze"))
    assert "Held now: 2 payouts totalling $150.00" in confirm.text
    assert "does not release them" in confirm.text

    operator_client.post(_url(seller, "unfreeze"), {"reason": "Review passed"})
    assert not PayoutPolicy.objects.get(seller=seller).frozen
    assert _statuses(open_payouts) == [Status.HELD, Status.HELD, Status.PAID]
    record = AuditRecord.objects.get(action="unfreeze")
    assert (record.actor, record.via) == (operator, "admin")


def test_the_page_refuses_operators_who_may_not_change_payout_policies(client, seller):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_seller", "change_seller"])
    )
    client.force_login(viewer)

    assert client.get(_url(seller)).status_code == 403
    assert client.post(_url(seller), {"reason": "x"}).status_code == 403
    assert client.post(_url(seller, "unfreeze"), {"reason": "x"}).status_code == 403
    page = client.get(reverse("admin:accounts_seller_change", args=[seller.pk]))
    assert page.status_code == 200 and "Freeze payouts" not in page.text
    assert not PayoutPolicy.objects.exists() and not AuditRecord.objects.exists()


def test_customers_cannot_reach_the_freeze_page(customer_client, seller):
    response = customer_client.post(_url(seller), {"reason": "x"})

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not PayoutPolicy.objects.exists()


# --- PostgreSQL: two operators freeze at once --------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_freezing_a_seller_without_a_policy_at_once_freeze_once(seller, operator):
    """The second one's new policy waits on the first one's (unique per seller), then
    finds the seller frozen: it says so and writes nothing."""
    from tests.concurrency import race

    second = UserFactory(is_staff=True)
    payouts = [_payout(seller, 1000 * n, f"2026-10-0{n}") for n in (1, 2, 3)]
    first = {}

    def winner():
        first["outcome"] = seller_freeze(seller=seller, by=operator, reason="first")

    loser = race(winner, lambda: seller_freeze(seller=seller, by=second, reason="second"))

    assert "error" not in loser, loser.get("error")
    assert (first["outcome"].changed, first["outcome"].payouts_held) == (True, 3)
    assert not loser["value"].changed and "already frozen (first)" in loser["value"].message
    assert PayoutPolicy.objects.get(seller=seller).frozen_reason == "first"
    assert AuditRecord.objects.filter(action="freeze").count() == 1
    assert _statuses(payouts) == [Status.HELD] * 3
