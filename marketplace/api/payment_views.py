"""Headless checkout: pay the caller's order through the API.

``POST /orders/{id}/payment/`` starts (or resumes) the payment and returns what
the client confirms it with: Stripe's ``client_secret`` for Stripe.js or a mobile
SDK, or, with the local processor, ``POST …/payment/confirm/`` with a test card or test IBAN
and ``…/payment/authenticate/`` for its 3-D Secure step. ``GET …/payment/`` is
read until ``order_status`` is ``paid``: an order is paid only once the
processor's event is processed, never on the client's word. Each view calls one
service of ``payments/collection/checkout.py``, as the site's payment pages do.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.api.payment_serializers import (
    PaymentAuthenticateRequestSerializer,
    PaymentConfirmRequestSerializer,
    PaymentSerializer,
)
from marketplace.kernel.api.idempotency import IdempotentMixin
from marketplace.kernel.errors import NotFound
from marketplace.models import Order
from payments.collection.checkout import (
    PaymentState,
    order_payment_authenticate,
    order_payment_confirm,
    order_payment_get,
    order_payment_start,
)

PROBLEM = {"$ref": "#/components/schemas/Problem"}
UNAVAILABLE = {
    (503, "application/problem+json"): OpenApiResponse(
        response=PROBLEM,
        description="The payment processor is not answering; retry after `Retry-After` "
        "seconds (a POST with the same Idempotency-Key).",
    )
}
DECLINED = {
    (402, "application/problem+json"): OpenApiResponse(
        response=PROBLEM,
        description="The card was declined (`card_declined`; `invalid_number`: not a test "
        "card; with `param: card_number`) or its confirmation refused "
        "(`payment_intent_authentication_failure`): the attempt is failed; start a new one.",
    )
}
TAG = ["orders"]


def _my_order(request: Request, pk: int) -> Order:
    """The caller's order: someone else's is 404, as if it did not exist."""
    return get_object_or_404(Order, pk=pk, customer_id=request.user.pk)


def _answer(order: Order, state: PaymentState) -> Response:
    order.refresh_from_db(fields=["status"])
    return Response(PaymentSerializer(state, context={"order": order}).data)


class OrderPaymentView(IdempotentMixin, APIView):
    """The payment of one of the caller's orders."""

    @extend_schema(
        tags=TAG,
        operation_id="orders_payment_retrieve",
        responses={200: PaymentSerializer, **UNAVAILABLE},
    )
    def get(self, request: Request, pk: int) -> Response:
        """The order's latest payment attempt and the order's status: read it until
        `order_status` is `paid`. 404 before a payment was started."""
        order = _my_order(request, pk)
        state = order_payment_get(order=order)
        if state is None:
            raise NotFound("No payment was started for this order.")
        return _answer(order, state)

    @extend_schema(
        tags=TAG,
        operation_id="orders_payment_create",
        request=None,
        responses={200: PaymentSerializer, **UNAVAILABLE},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Start paying the order, or resume its open attempt (the same payment intent):
        confirm it with `client_secret` (Stripe) or `…/payment/confirm/` (local).
        After a failed attempt, a new one is started. 409 `invalid_state` when the
        order is not awaiting payment."""
        order = _my_order(request, pk)
        return _answer(order, order_payment_start(order=order))


class OrderPaymentConfirmView(IdempotentMixin, APIView):
    @extend_schema(
        tags=TAG,
        operation_id="orders_payment_confirm",
        request=PaymentConfirmRequestSerializer,
        responses={200: PaymentSerializer, **DECLINED, **UNAVAILABLE},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Local processor only: pay the open attempt with a test card or a test IBAN
        (exactly one: 400 otherwise). The 3-D Secure card answers `status:
        requires_action` with a `next_action` to follow; a bank debit answers `status:
        processing` (`payment_method_type: bank_debit`) for a few days. With Stripe,
        409: confirm with Stripe.js or a mobile SDK and the `client_secret`."""
        order = _my_order(request, pk)
        body = PaymentConfirmRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = order_payment_confirm(
            order=order,
            card_number=body.validated_data.get("card_number", ""),
            iban=body.validated_data.get("iban", ""),
        )
        return _answer(order, state)


class OrderPaymentAuthenticateView(IdempotentMixin, APIView):
    @extend_schema(
        tags=TAG,
        operation_id="orders_payment_authenticate",
        request=PaymentAuthenticateRequestSerializer,
        responses={200: PaymentSerializer, **DECLINED, **UNAVAILABLE},
    )
    def post(self, request: Request, pk: int) -> Response:
        """Local processor only: the customer's answer to the confirmation step
        (3-D Secure) of an attempt in `requires_action`."""
        order = _my_order(request, pk)
        body = PaymentAuthenticateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = order_payment_authenticate(order=order, approve=body.validated_data["approve"])
        return _answer(order, state)
