"""Shop endpoints: the catalog (public), a seller's products, a customer's orders, a
seller's orders, and refund requests. Each write calls the same service as the page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsSellerOrOperator
from accounts.roles import is_operator, seller_for
from marketplace.api import serializers as s
from marketplace.filters import ProductFilter
from marketplace.kernel.api.errors import PROBLEM_CONTENT_TYPE, problem_body
from marketplace.kernel.api.expand import ExpandMixin, expand_parameter
from marketplace.kernel.api.idempotency import IdempotentMixin
from marketplace.kernel.api.metadata_patch import MetadataPatchMixin, MetadataUpdateSerializer
from marketplace.models import Category, Order, OrderLine, Product, SellerOrder
from marketplace.orders import order_cancel
from marketplace.services.cart import (
    CartStorage,
    cart_checkout,
    cart_contents,
    cart_set_quantity,
)
from marketplace.services.fulfilment import seller_order_deliver, seller_order_ship
from marketplace.services.orders import (
    CartItem,
    ShippingAddress,
    order_metadata_update,
    place_order,
)
from marketplace.services.products import product_create, product_update
from payments.api.serializers import RefundRequestSerializer
from payments.collection.refund_requests import refund_request_create

LINES = Prefetch(
    "lines", queryset=OrderLine.objects.select_related("seller_order__seller").order_by("pk")
)


def _seller_order_ids() -> Prefetch:
    return Prefetch(
        "seller_orders", queryset=SellerOrder.objects.only("id", "order_id").order_by("pk")
    )


def _seller_orders() -> Prefetch:
    return Prefetch(
        "seller_orders", queryset=SellerOrder.objects.prefetch_related(LINES).order_by("pk")
    )


class CategoryViewSet(ExpandMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """The catalog's categories (public)."""

    permission_classes = [permissions.AllowAny]
    queryset = Category.objects.select_related("parent").order_by("position", "name")
    serializer_class = s.CategorySerializer
    lookup_field = "slug"
    filterset_fields: list[str] = []


@csrf_exempt  # it changes nothing; a POST with a token must get this 404, not a CSRF 403
def api_not_found(request: Any, *args: Any, **kwargs: Any) -> Any:
    """Any other address under /api/v1/: a problem, not the site's HTML 404 page."""
    from django.http import JsonResponse

    body = problem_body(404, "There is no such API endpoint; see /api/v1/docs/.", "not_found")
    return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)


class ApiProductFilter(ProductFilter):
    """The shop's filters without its ``sort``: API lists are newest first, by cursor."""

    sort = None


class IsOwnSellerForWrites(permissions.BasePermission):
    message = "Only sellers may list products."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return seller_for(request.user) is not None


class ProductViewSet(
    IdempotentMixin,
    ExpandMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Products for sale (public), with the shop's search and filters. A seller
    creates products and changes their own; their hidden products are visible to them."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsOwnSellerForWrites]
    serializer_class = s.ProductSerializer
    filterset_class = ApiProductFilter

    def get_queryset(self) -> QuerySet[Product]:
        products = Product.objects.select_related("seller", "category").order_by(
            "-created_at", "-id"
        )
        seller = seller_for(self.request.user)
        if self.request.method not in permissions.SAFE_METHODS:
            return products.filter(seller=seller)
        if seller is not None and self.request.query_params.get("mine") == "1":
            return products.filter(seller=seller)
        return products.filter(is_active=True)

    def perform_create(self, serializer: Any) -> None:
        seller = seller_for(self.request.user)
        assert seller is not None
        serializer.instance = product_create(seller=seller, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        seller = seller_for(self.request.user)
        assert seller is not None
        try:
            serializer.instance = product_update(
                product=serializer.instance, seller=seller, **serializer.validated_data
            )
        except PermissionDenied as exc:
            raise exceptions.NotFound() from exc


ORDER_EXPAND = expand_parameter("seller_orders")


@extend_schema_view(
    list=extend_schema(parameters=[ORDER_EXPAND]),
    retrieve=extend_schema(parameters=[ORDER_EXPAND]),
)
class OrderViewSet(IdempotentMixin, MetadataPatchMixin, ExpandMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """The signed-in customer's orders with their lines and splits (``seller_orders``:
    ids, or whole with ``expand[]=seller_orders``). POST places an order from items and a
    shipping address (the checkout's ``place_order``); PATCH changes its ``metadata``."""

    serializer_class = s.OrderSerializer
    queryset = Order.objects.none()  # for the schema; the real one is the caller's orders
    filterset_fields = ["status", "currency"]
    expandable = {"seller_orders": (_seller_order_ids, _seller_orders)}

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        orders = Order.objects.filter(customer=self.request.user).prefetch_related(LINES)
        return self.with_expansions(orders)

    @extend_schema(request=MetadataUpdateSerializer, responses=s.OrderSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the order's ``metadata``: keys merge in; an empty string removes a key."""
        return super().partial_update(request, pk)

    def metadata_save(self, request: Request, obj: Any, metadata: dict[str, str]) -> None:
        order_metadata_update(order=obj, metadata=metadata)

    @extend_schema(request=s.OrderRequestSerializer, responses={201: s.OrderSerializer})
    def create(self, request: Request) -> Response:
        body = s.OrderRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        order = place_order(
            customer=request.user,  # type: ignore[arg-type]
            cart_items=[CartItem(item["product"], item["quantity"]) for item in data["items"]],
            shipping=ShippingAddress(**data["shipping"]),
            metadata=data.get("metadata"),
        )
        order = self.get_queryset().get(pk=order.pk)
        return Response(s.OrderSerializer(order).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel an order that is still awaiting payment (its stock is put back)."""
        order_cancel(order=self.get_object())
        return Response(s.OrderSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(
        request=s.RefundRequestCreateSerializer,
        responses={201: RefundRequestSerializer},
    )
    @action(detail=True, methods=["post"], url_path=r"lines/(?P<line_id>\d+)/refund-request")
    def refund_request(self, request: Request, pk: str, line_id: str) -> Response:
        """Ask the seller to refund one line of a paid order, with a reason."""
        order = self.get_object()
        line = order.lines.filter(pk=line_id).first()
        if line is None:
            raise exceptions.NotFound("No such line in this order.")
        body = s.RefundRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = refund_request_create(
            customer=request.user,  # type: ignore[arg-type]
            order_line=line,
            reason=body.validated_data["reason"],
        )
        return Response(RefundRequestSerializer(created).data, status=status.HTTP_201_CREATED)


class SellerOrderViewSet(IdempotentMixin, ExpandMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """A seller's part of each order with its lines and splits (operators: all).
    The seller (or an operator) marks it shipped, then delivered."""

    serializer_class = s.SellerOrderSerializer
    permission_classes = [IsSellerOrOperator]
    filterset_fields = ["status"]

    def get_queryset(self) -> QuerySet[SellerOrder]:
        orders = SellerOrder.objects.select_related("order").prefetch_related(LINES)
        if is_operator(self.request.user):
            return orders
        return orders.filter(seller=seller_for(self.request.user))

    def _seller(self) -> Any:
        return None if is_operator(self.request.user) else seller_for(self.request.user)

    @extend_schema(request=s.ShipRequestSerializer, responses=s.SellerOrderSerializer)
    @action(detail=True, methods=["post"])
    def ship(self, request: Request, pk: str) -> Response:
        """Mark shipped, with an optional tracking number; safe to repeat."""
        body = s.ShipRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        seller_order_ship(
            seller_order=self.get_object(),
            seller=self._seller(),
            tracking_number=body.validated_data["tracking_number"],
        )
        return Response(s.SellerOrderSerializer(self.get_queryset().get(pk=pk)).data)

    @extend_schema(request=None, responses=s.SellerOrderSerializer)
    @action(detail=True, methods=["post"])
    def deliver(self, request: Request, pk: str) -> Response:
        """Mark delivered; safe to repeat."""
        seller_order_deliver(seller_order=self.get_object(), seller=self._seller())
        return Response(s.SellerOrderSerializer(self.get_queryset().get(pk=pk)).data)


class CartView(APIView):
    """The signed-in customer's cart, grouped by currency (one checkout each), at
    today's prices. The site's cart is the same one."""

    @extend_schema(responses=s.CartGroupSerializer(many=True))
    def get(self, request: Request) -> Response:
        storage = CartStorage(user=request.user)  # type: ignore[arg-type]
        return Response(s.CartGroupSerializer(cart_contents(storage), many=True).data)


class CartItemsView(IdempotentMixin, APIView):
    """Put a product in the cart: ``quantity`` is the new quantity (0 removes it)."""

    @extend_schema(request=s.CartItemRequestSerializer, responses=s.CartGroupSerializer(many=True))
    def post(self, request: Request) -> Response:
        body = s.CartItemRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        product = Product.objects.filter(pk=body.validated_data["product"]).first()
        if product is None:
            raise exceptions.NotFound("No such product.")
        storage = CartStorage(user=request.user)  # type: ignore[arg-type]
        cart_set_quantity(
            storage=storage, product=product, quantity=body.validated_data["quantity"]
        )
        return Response(s.CartGroupSerializer(cart_contents(storage), many=True).data)


class CartCheckoutView(IdempotentMixin, APIView):
    """Place an order for the cart's items in one currency (they leave the cart)."""

    @extend_schema(request=s.CartCheckoutRequestSerializer, responses={201: s.OrderSerializer})
    def post(self, request: Request) -> Response:
        body = s.CartCheckoutRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order = cart_checkout(
            storage=CartStorage(user=request.user),  # type: ignore[arg-type]
            customer=request.user,  # type: ignore[arg-type]
            currency=body.validated_data["currency"],
            shipping=ShippingAddress(**body.validated_data["shipping"]),
            metadata=body.validated_data.get("metadata"),
        )
        order = Order.objects.prefetch_related(LINES, _seller_order_ids()).get(pk=order.pk)
        return Response(s.OrderSerializer(order).data, status=status.HTTP_201_CREATED)
