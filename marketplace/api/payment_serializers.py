"""Shapes of the headless checkout (``/api/v1/orders/{id}/payment/…``): shapes only;
``payments/collection/checkout.py`` decides."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.models import Order
from payments.models import PaymentAttempt
from payments.processors.local import LOCAL_AUTHENTICATE

NEXT_ACTION_SCHEMA = {
    "type": "object",
    "nullable": True,
    "additionalProperties": True,
    "properties": {"type": {"type": "string"}, "url": {"type": "string"}},
    "required": ["type"],
}


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``, nothing else (DRF's own field also takes ``"yes"``,
    ``1``, ``"on"``…: a confirmation step is answered with a real boolean)."""

    default_error_messages = {"invalid": "Must be a JSON boolean: true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class PaymentSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """An order's payment (its latest attempt): confirm it with ``client_secret``
    (Stripe.js) or a test card (local processor), do ``next_action`` if there is one,
    then read it until ``order_status`` is ``paid``."""

    order = serializers.IntegerField(source="attempt.order_id")
    order_status = serializers.SerializerMethodField(
        help_text="The order's status: `paid` once the processor's event is processed."
    )
    status = serializers.ChoiceField(
        source="attempt.status",
        choices=PaymentAttempt.Status.choices,
        help_text="This attempt's status; `failed`: start a new attempt with another card "
        "(or, after a failed bank debit, the order is `cancelled`); `processing`: a bank "
        "debit under way (days), or a card being confirmed.",
    )
    payment_method_type = serializers.CharField(
        source="attempt.payment_method_type",
        help_text="How the customer paid, as the processor names it (`card`, `bank_debit`, "
        "`sepa_debit`, `us_bank_account`, …); blank until known.",
    )
    processor = serializers.ChoiceField(source="attempt.processor", choices=["local", "stripe"])
    payment_intent = serializers.CharField(
        source="attempt.processor_payment_id",
        help_text="The processor's payment id (Stripe: the PaymentIntent's id).",
    )
    client_secret = serializers.CharField(
        source="attempt.client_secret",
        help_text="For Stripe.js or Stripe's mobile SDKs to confirm the payment.",
    )
    next_action = serializers.SerializerMethodField(
        help_text="What the customer must do next, or null. Stripe's PaymentIntent "
        "`next_action` as Stripe sends it; the local processor's "
        '`{"type": "local_authenticate", "url": …}`: POST `{"approve": true}` to `url`.'
    )
    amount_minor = serializers.IntegerField(source="attempt.amount_minor")
    currency = serializers.CharField(source="attempt.currency")
    failure_message = serializers.CharField(source="attempt.failure_message")

    @extend_schema_field(serializers.ChoiceField(choices=Order.Status.choices))
    def get_order_status(self, state: Any) -> str:
        return str(self.context["order"].status)

    @extend_schema_field(NEXT_ACTION_SCHEMA)
    def get_next_action(self, state: Any) -> dict[str, Any] | None:
        if state.next_action is None:
            return None
        action = dict(state.next_action)
        if action.get("type") == LOCAL_AUTHENTICATE:
            action["url"] = reverse("api:order-payment-authenticate", args=[state.attempt.order_id])
        return action


class PaymentConfirmRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A test card or a test IBAN (a bank debit): exactly one of them."""

    card_number = serializers.CharField(
        max_length=32,
        required=False,
        help_text="One of the local processor's test cards, spaces allowed.",
    )
    iban = serializers.CharField(
        max_length=42,
        required=False,
        help_text="One of the local processor's test IBANs, spaces allowed: a bank debit, "
        "`processing` for a few days, then paid (or the order cancelled if it fails).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("card_number", "").strip()) == bool(attrs.get("iban", "").strip()):
            raise serializers.ValidationError(
                "Give exactly one of card_number and iban.", code="one_of"
            )
        return attrs


class PaymentAuthenticateRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    approve = StrictBooleanField(help_text="true: the customer approves the payment.")
