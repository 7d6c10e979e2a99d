"""Demo data for issue 19's revenue models: seller plans in each demo currency, a
listing fee and a 2 % service fee per order, with one demo seller on Pro. Called by
``marketplace.demo.demo_seed`` after
the shop exists (``demo_revenue_seed(operator=..., created=result.created)``); rows that
exist are left as they are, so running it twice changes nothing."""

from __future__ import annotations

from accounts.models import Seller, User
from payments.models import ListingFee, SellerPlan, SellerPlanChoice, ServiceFee
from payments.revenue.listing_fees import listing_fee_save
from payments.revenue.plans import seller_plan_change, seller_plan_save
from payments.revenue.service_fees import service_fee_save

# (name, currency, monthly fee in minor units, commission in basis points, description)
PLANS = [
    ("Standard", "USD", 0, 1000, "No monthly fee; 10% commission on each sale."),
    ("Pro", "USD", 2900, 500, "29.00 a month; 5% commission on each sale."),
    ("Standard", "EUR", 0, 1000, "No monthly fee; 10% commission on each sale."),
    ("Pro", "EUR", 2700, 500, "27.00 a month; 5% commission on each sale."),
    ("Standard", "JPY", 0, 1000, "No monthly fee; 10% commission on each sale."),
    ("Pro", "JPY", 4500, 500, "4,500 yen a month; 5% commission on each sale."),
]
# (currency, fee per listing in minor units, days a listing lasts)
LISTING_FEES = [("USD", 20, 30), ("EUR", 20, 30), ("JPY", 30, 30)]
# (currency, percentage in basis points) of the customer's service fee per order
SERVICE_FEES = [("USD", 200), ("EUR", 200), ("JPY", 200)]
PRO_SELLER = "harbor-ceramics"  # a USD seller on Pro, to show the plan fee and 5 %


def demo_revenue_seed(*, operator: User | None, created: list[str]) -> None:
    """The plans and listing fees (through their services, audited as the operator), and
    the Pro plan for the demo's Pro seller; appends what it made to ``created``."""
    plans: dict[tuple[str, str], SellerPlan] = {}
    for name, currency, fee, bps, description in PLANS:
        plan = SellerPlan.objects.filter(name=name, currency=currency).first()
        if plan is None:
            plan = seller_plan_save(
                plan=SellerPlan(
                    name=name,
                    currency=currency,
                    monthly_fee_minor=fee,
                    commission_bps=bps,
                    description=description,
                ),
                by=operator,
                reason="Demo plans",
                via="system",
            )
            created.append(f"plan {name} ({currency})")
        plans[name, currency] = plan
    for currency, amount, days in LISTING_FEES:
        if not ListingFee.objects.filter(scope="default", currency=currency).exists():
            listing_fee_save(
                fee=ListingFee(
                    scope="default", currency=currency, amount_minor=amount, listing_days=days
                ),
                by=operator,
                reason="Demo listing fee",
                via="system",
            )
            created.append(f"listing fee ({currency})")
    for currency, bps in SERVICE_FEES:
        if not ServiceFee.objects.filter(currency=currency).exists():
            service_fee_save(
                fee=ServiceFee(name="Service fee", currency=currency, percentage_bps=bps),
                by=operator,
                reason="Demo service fee",
                via="system",
            )
            created.append(f"service fee ({currency})")
    seller = Seller.objects.filter(slug=PRO_SELLER).first()
    if seller is not None and not SellerPlanChoice.objects.filter(seller=seller).exists():
        seller_plan_change(
            seller=seller, plan=plans["Pro", seller.default_currency], by=operator, via="system"
        )
        created.append(f"{PRO_SELLER} on Pro")
