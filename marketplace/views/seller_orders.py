"""A seller's orders to fulfil: their part of each paid order, shipped, then delivered."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import seller_required
from marketplace.kernel.errors import ApplicationError
from marketplace.models import OrderLine, SellerOrder
from marketplace.services.fulfilment import seller_order_deliver, seller_order_ship
from marketplace.web import safe_next
from payments.reporting.earnings_schedule import when_paid
from payments.reporting.seller_history import history_rows, seller_transactions

TABS = {
    "to_ship": ("To ship", {"shipped_at__isnull": True, "status__in": ["paid"]}),
    "shipped": ("On the way", {"shipped_at__isnull": False, "delivered_at__isnull": True}),
    "all": ("All", {}),
}


@seller_required
@require_GET
def seller_order_list(request):
    tab = request.GET.get("show", "to_ship")
    if tab not in TABS:
        tab = "to_ship"
    orders = (
        SellerOrder.objects.filter(seller=request.seller, order__paid_at__isnull=False)
        .filter(**TABS[tab][1])
        .select_related("order")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("pk")))
        .order_by("-order__paid_at", "-pk")
    )
    page = Paginator(orders, 20).get_page(request.GET.get("page"))
    when = when_paid(seller_orders=list(page.object_list))
    return render(
        request,
        "marketplace/seller/orders.html",
        {
            "page": page,
            "orders": [(so, when[so.pk]) for so in page.object_list],
            "tab": tab,
            "tabs": [(key, label) for key, (label, _) in TABS.items()],
        },
    )


@seller_required
@require_GET
def seller_order_detail(request, pk: int):
    """One paid order as the seller sees it: their lines, what they earn from each,
    when it is paid out, and every ledger movement about it."""
    seller_order = get_object_or_404(
        SellerOrder.objects.select_related("order").prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
        ),
        pk=pk,
        seller=request.seller,
        order__paid_at__isnull=False,
    )
    history = seller_transactions(
        seller=request.seller, currency=seller_order.order.currency, seller_order=seller_order
    )
    return render(
        request,
        "marketplace/seller/order_detail.html",
        {
            "so": seller_order,
            "when": when_paid(seller_orders=[seller_order])[seller_order.pk],
            "rows": history_rows(list(history)),
        },
    )


def _mine(request, pk: int) -> SellerOrder:
    return get_object_or_404(SellerOrder, pk=pk, seller=request.seller)


def _back(request, default: str):
    """Where the form was posted from (the list or the order's page), else ``default``."""
    return redirect(safe_next(request, default))


@seller_required
@require_POST
def seller_order_ship_view(request, pk: int):
    seller_order = _mine(request, pk)
    try:
        seller_order_ship(
            seller_order=seller_order,
            seller=request.seller,
            tracking_number=request.POST.get("tracking_number", ""),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order #{seller_order.order_id} is marked shipped.")
    return _back(request, reverse("marketplace:seller_orders"))


@seller_required
@require_POST
def seller_order_deliver_view(request, pk: int):
    seller_order = _mine(request, pk)
    try:
        seller_order_deliver(seller_order=seller_order, seller=request.seller)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Order #{seller_order.order_id} is marked delivered.")
    return _back(request, f"{reverse('marketplace:seller_orders')}?show=shipped")
