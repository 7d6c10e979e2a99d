"""A seller's "Get paid" page: connect a payout account at the processor."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.decorators import seller_required
from payments.balances import seller_balance, seller_currencies
from payments.onboarding import seller_account_sync, seller_onboarding_start
from payments.payout_breakdown import payout_breakdown
from payments.payouts import next_payout_for
from payments.policies import payout_policy_for
from payments.processors import get_processor
from payments.processors.base import ProcessorError


@seller_required
@require_http_methods(["GET", "POST"])
def payouts_setup(request):
    if request.method == "POST":
        try:
            link = seller_onboarding_start(
                seller=request.seller,
                refresh_url=request.build_absolute_uri(reverse("marketplace:seller_payouts")),
                return_url=request.build_absolute_uri(reverse("marketplace:seller_payouts_return")),
            )
        except ProcessorError:
            messages.error(
                request, "The payment service is not answering. Please try again shortly."
            )
            return redirect("marketplace:seller_payouts")
        return redirect(link.url)
    seller = request.seller
    currencies = seller_currencies(seller)
    summaries = [
        {
            "balance": seller_balance(seller=seller, currency=currency),
            "next": next_payout_for(seller=seller, currency=currency),
        }
        for currency in currencies
    ]
    payouts = seller.payouts.order_by("-created_at", "-id")[:50]
    return render(
        request,
        "marketplace/seller/payouts.html",
        {
            "seller": seller,
            "summaries": summaries,
            "payouts": payouts,
            "policy": payout_policy_for(seller),
        },
    )


@seller_required
@require_GET
def payout_detail(request, pk: int):
    payout = get_object_or_404(request.seller.payouts, pk=pk)
    return render(
        request,
        "marketplace/seller/payout_detail.html",
        {"payout": payout, "breakdown": payout_breakdown(payout=payout)},
    )


@seller_required
@require_GET
def payouts_return(request):
    seller = request.seller
    if seller.payout_account_id:
        try:
            seller = (
                seller_account_sync(
                    processor_name=get_processor().name, account_id=seller.payout_account_id
                )
                or seller
            )
        except ProcessorError:
            messages.error(
                request, "We could not read your payout account; it will update shortly."
            )
    if seller.can_receive_payouts:
        messages.success(request, "Your payout account is ready. You will be paid automatically.")
    else:
        messages.info(request, "Your payout account still needs some details.")
    return redirect("marketplace:seller_payouts")
