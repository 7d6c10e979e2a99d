"""Refund requests: the customer's form on the order page, the seller's decisions."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import seller_required
from marketplace.kernel.errors import ApplicationError
from marketplace.models import OrderLine
from payments.collection.refund_requests import (
    refund_request_approve,
    refund_request_create,
    refund_request_decline,
)
from payments.models import RefundRequest
from payments.processors.base import ProcessorError


@login_required
@require_POST
def refund_request_new(request, pk: int, line_pk: int):
    line = get_object_or_404(
        OrderLine.objects.select_related("order"),
        pk=line_pk,
        order_id=pk,
        order__customer=request.user,
    )
    try:
        refund_request_create(
            customer=request.user, order_line=line, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Your refund request for “{line.title}” was sent to the seller.")
    return redirect("marketplace:order_detail", pk=pk)


@seller_required
@require_GET
def seller_refund_requests(request):
    requests = RefundRequest.objects.filter(
        order_line__seller_order__seller=request.seller
    ).select_related("order_line__order", "requested_by", "refund")
    return render(request, "marketplace/seller/refund_requests.html", {"requests": requests})


def _mine(request, pk: int) -> RefundRequest:
    return get_object_or_404(RefundRequest, pk=pk, order_line__seller_order__seller=request.seller)


@seller_required
@require_POST
def seller_refund_request_approve(request, pk: int):
    refund_request = _mine(request, pk)
    try:
        refund_request_approve(request=refund_request, by=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    except ProcessorError:
        messages.error(
            request, "The refund was approved; the payment service will process it shortly."
        )
    else:
        messages.success(request, "Refund approved and sent to the payment processor.")
    return redirect("marketplace:seller_refund_requests")


@seller_required
@require_POST
def seller_refund_request_decline(request, pk: int):
    refund_request = _mine(request, pk)
    try:
        refund_request_decline(
            request=refund_request, by=request.user, note=request.POST.get("note", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Refund request declined.")
    return redirect("marketplace:seller_refund_requests")
