"""Seller plans: a monthly fee charged from the seller's balance, optionally for a lower
commission (payments.revenue.commission applies the plan's percentage), with proration when a
seller changes plan in the middle of a month.

Rules:

- The billing period is the calendar month in the site's time zone
  (``settings.TIME_ZONE``): from midnight on the 1st to midnight on the 1st of the
  next month, measured in whole seconds of real (UTC) time, so a month with a daylight
  saving change has an hour more or less.
- At each period's start, every current plan's monthly fee is charged once per
  (plan choice, period): key ``plan-fee:<choice id>:<YYYY-MM>``, unique on the
  charge row and on the ledger transaction. A seller's plan is one choice at a time,
  so this is once per (seller, period) for the plan they are on.
- A charge moves the fee from the seller's ``available`` balance to the platform's
  ``plan_fees`` account (seller available +fee, plan_fees -fee). If the balance is
  short, the seller's available goes negative: a debt the next payout nets.
- A zero fee (a free plan) records the charge row with no ledger transaction (the
  ledger has no zero entries), so the history and the once-per-period key hold.
- Changing plan at instant ``t`` of a period ``[s, e)`` of ``P`` seconds:
  the current plan is billed for the period first if it was not yet (it was current
  at the period's start); its charge ``C``, which covered ``[c, e)``, is credited back
  for the seconds left: ``credit = C * (e - t) / (e - c)``, rounded half-up to the
  minor unit, and the seller keeps paying ``C - credit``, so kept + credited == C
  exactly; the new plan is charged ``fee * (e - t) / P``, rounded half-up. Spans are
  counted in whole seconds (fractions dropped). A credit of zero records nothing.
- Choosing the plan one is on changes nothing. A plan must be offered (an operator
  may assign one that is not) and in the seller's default currency.
- Everything that changes a seller's plan or charges them takes the seller's money
  lock (payments.ledger.locks) and reads the current plan again under it, so billing and a
  change, or two of either, cannot both act on the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Seller, User
from accounts.roles import is_operator
from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from marketplace.kernel.errors import InvalidRequest
from marketplace.kernel.money import is_whole_number
from payments.ledger.audit import audit_record, audited_save
from payments.ledger.locks import sellers_money_lock
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import (
    LedgerAccount,
    LedgerTransaction,
    SellerPlan,
    SellerPlanCharge,
    SellerPlanChoice,
)

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
ChargeKind = SellerPlanCharge.Kind


# --- Periods and proration --------------------------------------------------------


def billing_period(at: datetime) -> tuple[datetime, datetime]:
    """The calendar month holding ``at`` in the site's time zone: ``[start, end)``."""
    zone = ZoneInfo(settings.TIME_ZONE)
    local = at.astimezone(zone)
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    end = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=zone)
    return start, end


def seconds_between(start: datetime, end: datetime) -> int:
    """Whole seconds of real time from ``start`` to ``end`` (UTC, so daylight saving counts)."""
    delta = end.astimezone(UTC) - start.astimezone(UTC)
    return delta.days * 86_400 + delta.seconds


def pro_rata(amount_minor: int, part: int, whole: int) -> int:
    """``amount * part / whole`` rounded half-up to the minor unit (integers only)."""
    if whole <= 0:
        raise ValueError("The whole must be positive.")
    return (2 * amount_minor * part + whole) // (2 * whole)


def period_label(start: datetime) -> str:
    return start.astimezone(ZoneInfo(settings.TIME_ZONE)).strftime("%Y-%m")


def period_name(start: datetime) -> str:
    """The period as people read it: "December 2026"."""
    return start.astimezone(ZoneInfo(settings.TIME_ZONE)).strftime("%B %Y")


def _now(at: datetime | None) -> datetime:
    return at or timezone.now()


# --- Plans ------------------------------------------------------------------------


def seller_plan_save(
    *, plan: SellerPlan, by: User | None = None, reason: str = "", via: str = "code"
) -> SellerPlan:
    """Validate and save a plan, recording who changed what and why (audited): the fee is
    a whole number of minor units, not negative; the commission is 0 to 100 % (or blank:
    the commission rules apply); the currency is one the platform supports; a plan that
    sellers have chosen keeps its currency (their charges are in it). Sellers already on
    the plan pay the new fee from the next period on; orders keep the commission they
    were placed with."""
    errors: dict[str, str] = {}
    if not is_whole_number(plan.monthly_fee_minor):
        errors["monthly_fee_minor"] = "The fee is a whole number of minor units."
    elif plan.monthly_fee_minor < 0:
        errors["monthly_fee_minor"] = "The monthly fee cannot be negative."
    if plan.commission_bps is not None and (
        not is_whole_number(plan.commission_bps) or not 0 <= plan.commission_bps <= 10_000
    ):
        errors["commission_bps"] = "The commission is between 0 and 100%."
    if plan.currency not in SUPPORTED_CURRENCIES:
        errors["currency"] = f"{plan.currency!r} is not a supported currency."
    elif plan.pk is not None:
        before = SellerPlan.objects.filter(pk=plan.pk).values_list("currency", flat=True).first()
        if before and before != plan.currency and plan.choices.exists():
            errors["currency"] = "Sellers have chosen this plan: its currency cannot change."
    if errors:
        raise ValidationError(errors)
    audited_save(instance=plan, by=by, reason=reason, via=via)
    return plan


def seller_plan_current(*, seller: Seller, at: datetime | None = None) -> SellerPlanChoice | None:
    """The seller's plan choice current at ``at`` (now: the one not ended), with its plan."""
    choices = SellerPlanChoice.objects.select_related("plan").filter(seller=seller)
    if at is None:
        return choices.filter(ended_at__isnull=True).first()
    return (
        choices.filter(started_at__lte=at)
        .exclude(ended_at__lte=at)
        .order_by("-started_at", "-id")
        .first()
    )


def plan_commission_text(plan: SellerPlan) -> str:
    """The plan's commission for people: "5%", "12.5%", or "" when the rules apply."""
    if plan.commission_bps is None:
        return ""
    return f"{(Decimal(plan.commission_bps) / 100).normalize():f}%"


def plans_offered(*, seller: Seller) -> list[SellerPlan]:
    """The plans a seller may choose: offered, in their default currency, cheapest first."""
    return list(SellerPlan.objects.filter(is_offered=True, currency=seller.default_currency))


# --- Charges ----------------------------------------------------------------------


def _post_charge(charge: SellerPlanCharge, *, seller: Seller, plan: SellerPlan) -> None:
    """Record the charge row, then (if it moves money) its one ledger transaction."""
    charge.save(force_insert=True)
    if not charge.amount_minor:
        return
    available = seller_account(seller, Kind.AVAILABLE, charge.currency)
    fees = platform_account(Kind.PLAN_FEES, charge.currency)
    sign = 1 if charge.kind == ChargeKind.CHARGE else -1
    what = "Plan fee" if charge.kind == ChargeKind.CHARGE else "Plan fee credited"
    txn = ledger_post(
        kind=TxnKind.PLAN_FEE if charge.kind == ChargeKind.CHARGE else TxnKind.PLAN_FEE_CREDIT,
        idempotency_key=charge.idempotency_key,
        reference_type="seller_plan_charge",
        reference_id=charge.pk,
        postings=[
            Posting(available, sign * charge.amount_minor),
            Posting(fees, -sign * charge.amount_minor),
        ],
        description=f"{what} — {plan.name}, {period_name(charge.period_start)}",
    )
    charge.ledger_transaction = txn
    charge.save(update_fields=["ledger_transaction"])


def _charge_key(choice_id: int, period_start: datetime) -> str:
    return f"plan-fee:{choice_id}:{period_label(period_start)}"


def _credit_key(choice_id: int, period_start: datetime) -> str:
    return f"plan-credit:{choice_id}:{period_label(period_start)}"


def _charge_for_period(
    choice: SellerPlanChoice, at: datetime
) -> tuple[SellerPlanCharge | None, SellerPlanCharge | None]:
    """(the existing charge of ``choice`` for the period of ``at``, or None; the charge
    that billing would make now, unsaved, or None if it exists or is not due)."""
    start, end = billing_period(at)
    key = _charge_key(choice.pk, start)
    existing = SellerPlanCharge.objects.filter(idempotency_key=key).first()
    if existing is not None or choice.started_at >= end:
        return existing, None
    since = max(start, choice.started_at.replace(microsecond=0))
    fee = choice.plan.monthly_fee_minor
    amount = pro_rata(fee, seconds_between(since, end), seconds_between(start, end))
    return None, SellerPlanCharge(
        seller_id=choice.seller_id,
        plan=choice.plan,
        choice=choice,
        kind=ChargeKind.CHARGE,
        currency=choice.plan.currency,
        amount_minor=amount,
        period_start=since,
        period_end=end,
        idempotency_key=key,
    )


def _credit_for_change(charge: SellerPlanCharge, at: datetime) -> SellerPlanCharge | None:
    """The unused part of ``charge`` after ``at``, unsaved; None if nothing is left."""
    if at >= charge.period_end or not charge.amount_minor:
        return None
    at = max(at, charge.period_start)
    credit = pro_rata(
        charge.amount_minor,
        seconds_between(at, charge.period_end),
        seconds_between(charge.period_start, charge.period_end),
    )
    if not credit:
        return None
    start, _ = billing_period(charge.period_start)
    return SellerPlanCharge(
        seller_id=charge.seller_id,
        plan_id=charge.plan_id,
        choice_id=charge.choice_id,
        kind=ChargeKind.CREDIT,
        currency=charge.currency,
        amount_minor=credit,
        period_start=at,
        period_end=charge.period_end,
        idempotency_key=_credit_key(charge.choice_id, start),
    )


def seller_plan_bill(*, seller: Seller, at: datetime | None = None) -> SellerPlanCharge | None:
    """Charge the seller's current plan for the period of ``at`` if it is not charged yet
    (see the module's rules); returns the period's charge (new or existing), or None when
    the seller is on no plan. Safe to run twice and concurrently: the seller's money lock
    and the charge's unique key make the second a no-op."""
    return _bill(seller, at or timezone.now())[0]


def _bill(seller: Seller, at: datetime) -> tuple[SellerPlanCharge | None, bool]:
    with transaction.atomic():
        sellers_money_lock([seller.pk])
        choice = seller_plan_current(seller=seller)
        if choice is None or choice.started_at > at:
            return None, False
        existing, due = _charge_for_period(choice, at)
        if due is None:
            return existing, False
        _post_charge(due, seller=seller, plan=choice.plan)
        return due, True


def seller_plans_bill(now: datetime | None = None) -> int:
    """Bill every current plan not yet charged for the period of ``now`` (Celery beat,
    hourly); one database transaction per seller. Returns how many charges were made."""
    now = now or timezone.now()
    _, end = billing_period(now)
    charged = SellerPlanCharge.objects.filter(
        choice=OuterRef("pk"), kind=ChargeKind.CHARGE, period_end=end
    )
    due = (
        SellerPlanChoice.objects.filter(ended_at__isnull=True, started_at__lte=now)
        .exclude(Exists(charged))
        .select_related("seller")
        .order_by("seller_id")
    )
    return sum(_bill(choice.seller, now)[1] for choice in due)


# --- Changing plan ----------------------------------------------------------------


@dataclass(frozen=True)
class PlanChange:
    """What a change of plan at one instant charges and credits (minor units)."""

    current: SellerPlanChoice | None
    plan: SellerPlan
    at: datetime
    period_start: datetime
    period_end: datetime
    catch_up_minor: int  # the current plan's fee for the period, if not charged yet
    credit_minor: int  # the unused part of the current plan's fee, given back
    charge_minor: int  # the new plan's fee for the rest of the period
    currency: str

    @property
    def net_minor(self) -> int:
        """What the change costs the seller now (negative: what it gives back)."""
        return self.catch_up_minor + self.charge_minor - self.credit_minor

    @property
    def period(self) -> str:
        return period_name(self.period_start)


def _check_choice(*, seller: Seller, plan: SellerPlan, by: User | None) -> None:
    if plan.currency != seller.default_currency:
        raise InvalidRequest(
            f"The {plan.name} plan is in {plan.currency}; this seller is paid in "
            f"{seller.default_currency}.",
            param="plan",
        )
    if not plan.is_offered and not (by is not None and is_operator(by)):
        raise InvalidRequest(f"The {plan.name} plan is not offered.", param="plan")


def _change_figures(
    *, seller: Seller, current: SellerPlanChoice | None, plan: SellerPlan, at: datetime
) -> tuple[PlanChange, SellerPlanCharge | None, SellerPlanCharge | None]:
    start, end = billing_period(at)
    catch_up: SellerPlanCharge | None = None
    credit: SellerPlanCharge | None = None
    if current is not None:
        existing, catch_up = _charge_for_period(current, at)
        charged = existing or catch_up
        if charged is not None:
            credit = _credit_for_change(charged, at)
    fee = plan.monthly_fee_minor
    charge_minor = pro_rata(fee, seconds_between(at, end), seconds_between(start, end))
    change = PlanChange(
        current=current,
        plan=plan,
        at=at,
        period_start=start,
        period_end=end,
        catch_up_minor=catch_up.amount_minor if catch_up else 0,
        credit_minor=credit.amount_minor if credit else 0,
        charge_minor=charge_minor,
        currency=plan.currency,
    )
    return change, catch_up, credit


def seller_plan_change_preview(
    *, seller: Seller, plan: SellerPlan, by: User | None = None, at: datetime | None = None
) -> PlanChange:
    """What ``seller_plan_change`` would charge and credit now (nothing is written);
    the same refusals as the change itself."""
    _check_choice(seller=seller, plan=plan, by=by)
    at = _now(at)
    change, _, _ = _change_figures(
        seller=seller, current=seller_plan_current(seller=seller), plan=plan, at=at
    )
    return change


def seller_plan_change(
    *,
    seller: Seller,
    plan: SellerPlan,
    by: User | None,
    at: datetime | None = None,
    reason: str = "",
    via: str = "code",
) -> SellerPlanChoice:
    """Move the seller to ``plan`` at ``at`` (now), prorated (module rules): ends the
    current choice, starts the new one, bills the current plan for the period if it was
    not yet, credits its unused part, and charges the new plan for the rest of the
    period, all in one database transaction under the seller's money lock. Choosing the
    current plan again changes nothing and returns the current choice. Refused with
    nothing saved: a plan in another currency than the seller's, a plan not offered
    (unless ``by`` is an operator), an instant before the current plan started. The
    new choice's history records who chose it, how (``via``) and why."""
    _check_choice(seller=seller, plan=plan, by=by)
    with transaction.atomic():
        sellers_money_lock([seller.pk])
        at = _now(at)  # now: read under the lock, after any change that came first
        current = seller_plan_current(seller=seller)
        if current is not None and current.plan_id == plan.pk:
            return current
        if current is not None and at < current.started_at:
            raise InvalidRequest("A plan change cannot come before the current plan started.")
        change, catch_up, credit = _change_figures(seller=seller, current=current, plan=plan, at=at)
        if current is not None:
            if catch_up is not None:
                _post_charge(catch_up, seller=seller, plan=current.plan)
            if credit is not None:
                credit.choice = current
                _post_charge(credit, seller=seller, plan=current.plan)
            current.ended_at = at
            current.save(update_fields=["ended_at"])
        choice = SellerPlanChoice.objects.create(
            seller=seller, plan=plan, started_at=at, chosen_by=by
        )
        audit_record(
            target=choice,
            action="plan chosen",
            by=by,
            reason=reason or f"{plan.name} chosen",
            via=via,
            changes={"plan": [current.plan.name if current else None, plan.name]},
        )
        start, end = change.period_start, change.period_end
        _post_charge(
            SellerPlanCharge(
                seller=seller,
                plan=plan,
                choice=choice,
                kind=ChargeKind.CHARGE,
                currency=plan.currency,
                amount_minor=change.charge_minor,
                period_start=at,
                period_end=end,
                idempotency_key=_charge_key(choice.pk, start),
            ),
            seller=seller,
            plan=plan,
        )
    return choice


def seller_plan_charges(*, seller: Seller, limit: int = 24) -> list[SellerPlanCharge]:
    """The seller's latest plan charges and credits (``limit``), newest first, with plans."""
    charges = SellerPlanCharge.objects.filter(seller=seller).select_related("plan")
    return list(charges.order_by("-created_at", "-id")[:limit])
