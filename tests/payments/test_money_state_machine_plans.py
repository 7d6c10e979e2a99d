"""The money state machine with the revenue models of issue 19: seller plans billed at
the period start, changed mid-period with proration, and listing fees charged per
listing. Every rule of ``MoneyMachine`` still runs; the model here re-derives each
fee with its own arithmetic (calendar months in UTC, the tests' time zone; half-up pro
rata to the second) and moves it out of the seller's ``available``; the invariants
count the fees in what a seller kept, and a seller may be in debt by them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from payments.models import SellerPlan
from payments.revenue.listing_fees import product_listing_charge
from payments.revenue.plans import seller_plan_change, seller_plans_bill
from tests.factories import ListingFeeFactory, ProductFactory
from tests.payments.test_money_state_machine import (
    CURRENCIES,
    EXAMPLES,
    SELLER_KINDS,
    STEPS,
    MoneyMachine,
)

LISTING_FEES = {"JPY": 30, "USD": 25, "KWD": 125}


def month_of(at: datetime) -> tuple[datetime, datetime]:
    """The model's own calendar month in UTC: [first midnight, next first midnight)."""
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def seconds(a: datetime, b: datetime) -> int:
    return int((b - a).total_seconds())


def half_up(amount: int, part: int, whole: int) -> int:
    """amount * part / whole, half-up at the minor unit (for non-negative figures)."""
    quotient, remainder = divmod(amount * part, whole)
    return quotient + (1 if 2 * remainder >= whole else 0)


class PlansMoneyMachine(MoneyMachine):
    def __init__(self) -> None:
        super().__init__()
        self.plans: list[SellerPlan] = []
        self.current: dict[int, tuple[int, SellerPlan, datetime]] = {}  # seller -> choice
        self.choices = 0
        # (seller, choice number, period start) -> (amount, covered from, period end)
        self.charged: dict[tuple[int, int, datetime], tuple[int, datetime, datetime]] = {}
        self.fees: dict[tuple[int, str], int] = {}  # what fees took from each seller, net
        self.plan_net: dict[int, int] = {}  # per seller: plan charges less credits
        self.clock = 0

    @initialize(
        fees=st.lists(st.integers(0, 40_000), min_size=2, max_size=2),
        commissions=st.lists(st.sampled_from([None, 0, 500, 10_000]), min_size=2, max_size=2),
    )
    def set_up_plans(self, fees, commissions):
        self.plans = [
            SellerPlan.objects.create(
                name=f"Plan {i}", currency="USD", monthly_fee_minor=fee, commission_bps=bps
            )
            for i, (fee, bps) in enumerate(zip(fees, commissions, strict=True))
        ]
        for currency, amount in LISTING_FEES.items():
            ListingFeeFactory(currency=currency, amount_minor=amount, listing_days=30)

    # --- helpers ----------------------------------------------------------------------

    def at(self, minutes: int) -> datetime:
        """A whole-second instant after every earlier one of this machine."""
        self.clock += minutes * 60 + 1
        return (self.now() + timedelta(seconds=self.clock)).replace(microsecond=0)

    def fee_moved(self, seller: int, currency: str, kind: str, charged: int) -> None:
        """The seller pays ``charged`` (negative: is credited) from available."""
        if kind == "plan_fees":
            self.plan_net[seller] = self.plan_net.get(seller, 0) + charged
        self.move(seller, currency, "available", -charged)
        self.post(currency, kind, -charged)
        self.fees[seller, currency] = self.fees.get((seller, currency), 0) + charged

    def bill(self, seller: int, at: datetime) -> None:
        if seller not in self.current:
            return
        number, plan, started = self.current[seller]
        start, end = month_of(at)
        if started > at or (seller, number, start) in self.charged:
            return
        since = max(start, started)
        amount = half_up(plan.monthly_fee_minor, seconds(since, end), seconds(start, end))
        self.charged[seller, number, start] = (amount, since, end)
        if amount:
            self.fee_moved(seller, "USD", "plan_fees", amount)

    # --- rules ------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 60 * 24 * 20))
    def bill_plan_fees(self, minutes):
        """The hourly billing: every current plan not yet charged for the month."""
        at = self.at(minutes)
        seller_plans_bill(now=at)
        for seller in list(self.current):
            self.bill(seller, at)

    @rule(seller=st.integers(0, 2), plan=st.integers(0, 1), minutes=st.integers(0, 60 * 24 * 20))
    def change_plan(self, seller, plan, minutes):
        """A seller switches plan mid-month: the old plan billed if it was not, its unused
        part credited, the new plan charged for the rest of the month."""
        at = self.at(minutes)
        chosen = self.plans[plan]
        seller_plan_change(seller=self.sellers[seller].obj, plan=chosen, by=None, at=at)
        current = self.current.get(seller)
        if current is not None and current[1].pk == chosen.pk:
            return
        start, end = month_of(at)
        if current is not None:
            self.bill(seller, at)
            charge = self.charged.get((seller, current[0], start))
            if charge is not None and charge[0] and at < charge[2]:
                amount, since, until = charge
                credit = half_up(amount, seconds(max(at, since), until), seconds(since, until))
                if credit:
                    self.fee_moved(seller, "USD", "plan_fees", -credit)
        self.choices += 1
        self.current[seller] = (self.choices, chosen, at)
        amount = half_up(chosen.monthly_fee_minor, seconds(at, end), seconds(start, end))
        self.charged[seller, self.choices, start] = (amount, at, end)
        if amount:
            self.fee_moved(seller, "USD", "plan_fees", amount)

    @precondition(lambda self: self.sellers)
    @rule(seller=st.integers(0, 2), currency=st.sampled_from(CURRENCIES))
    def list_a_product(self, seller, currency):
        """A new listing: its fee in the product's currency from the seller's balance."""
        product = ProductFactory(seller=self.sellers[seller].obj, currency=currency, stock=1)
        charge = product_listing_charge(product=product, at=self.now())
        assert charge is not None and charge.amount_minor == LISTING_FEES[currency]
        self.fee_moved(seller, currency, "listing_fees", LISTING_FEES[currency])

    # --- invariants: the base's, with the fees a seller paid --------------------------

    @invariant()
    def sellers_keep_what_they_earned(self):
        """pending + available + in transit + disputed + paid out == earned - refunded
        - lost - fees, exactly; the disputed account holds what open disputes hold; a
        seller is in debt only by what left for their bank and the fees they paid."""
        held: dict[tuple[int, str], int] = {}
        for dispute in self.disputes:
            if dispute.status == "open":
                for hold in dispute.holds:
                    key = (hold.line.seller, dispute.order.currency)
                    held[key] = held.get(key, 0) + hold.share - hold.refunded_share
        for seller in self.sellers:
            for currency in CURRENCIES:
                key = (seller.index, currency)
                owed = {kind: self.owed.get((*key, kind), 0) for kind in SELLER_KINDS}
                kept = (
                    self.earned.get(key, 0)
                    - self.refunded.get(key, 0)
                    - self.lost.get(key, 0)
                    - self.fees.get(key, 0)
                )
                assert sum(owed.values()) + self.paid_out.get(key, 0) == kept, (seller, currency)
                assert owed["disputed"] == held.get(key, 0)
                assert owed["pending"] >= 0 and owed["in_transit"] >= 0
                assert owed["available"] >= -self.sent.get(key, 0) - self.fees.get(key, 0)
                assert self.sent.get(key, 0) == owed["in_transit"] + self.paid_out.get(key, 0)

    @invariant()
    def plan_fees_match_the_plans(self):
        """Per seller, what plan charges less credits took equals the model's sum."""
        from payments.models import SellerPlanCharge

        for seller in self.sellers:
            net = sum(
                c.amount_minor if c.kind == "charge" else -c.amount_minor
                for c in SellerPlanCharge.objects.filter(seller=seller.obj)
            )
            assert net == self.plan_net.get(seller.index, 0), (seller.index, net)


@pytest.mark.django_db
def test_money_state_machine_with_plans_and_listing_fees():
    run_state_machine_as_test(
        PlansMoneyMachine,
        settings=settings(
            max_examples=max(EXAMPLES // 4, 25),
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        ),
    )
