"""A seller's plan: what they are on, the plans offered to them, the prorated cost of a
switch (shown before they confirm), and their plan charges. Each write calls one
service (``payments.revenue.plans``)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.decorators import seller_required
from marketplace.kernel.errors import ApplicationError
from payments.models import SellerPlan
from payments.revenue.plans import (
    plan_commission_text,
    plans_offered,
    seller_plan_change,
    seller_plan_change_preview,
    seller_plan_charges,
    seller_plan_current,
)


def _chosen_plan(request, value):
    try:
        return SellerPlan.objects.get(pk=int(value))
    except (TypeError, ValueError, SellerPlan.DoesNotExist):
        return None


@seller_required
@require_http_methods(["GET", "POST"])
def seller_plan(request):
    seller = request.seller
    if request.method == "POST":
        plan = _chosen_plan(request, request.POST.get("plan"))
        if plan is None:
            messages.error(request, "Choose one of the plans below. Nothing was changed.")
            return redirect("marketplace:seller_plan")
        try:
            seller_plan_change(
                seller=seller, plan=plan, by=request.user, reason="Chosen by the seller",
                via="seller",
            )  # fmt: skip
        except ApplicationError as exc:
            messages.error(request, f"{exc.message} Nothing was changed.")
        else:
            messages.success(request, f"You are now on the {plan.name} plan.")
        return redirect("marketplace:seller_plan")

    current = seller_plan_current(seller=seller)
    offered = plans_offered(seller=seller)
    for plan in [*offered, *([current.plan] if current else [])]:
        plan.commission_shown = plan_commission_text(plan)
    preview, status = None, 200
    wanted = request.GET.get("switch")
    if wanted:
        plan = _chosen_plan(request, wanted)
        try:
            if plan is None:
                raise ApplicationError("There is no such plan.")
            preview = seller_plan_change_preview(seller=seller, plan=plan, by=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status = 400
    return render(
        request,
        "marketplace/seller/plan.html",
        {
            "current": current,
            "offered": offered,
            "preview": preview,
            "charges": seller_plan_charges(seller=seller),
        },
        status=status,
    )
