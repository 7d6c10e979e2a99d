"""The events integrators receive (``payments.integrations.webhooks``), and what each one says.

Amounts are integers in minor units with their currency, as in the API. A
seller's endpoint sees only that seller's part of an order or refund. Each event
is also recorded (``payments.integrations.events``) for ``GET /api/v1/events/``, filterable by
the object it is about (``order``, ``refund`` or ``payout`` and its id).
"""

from __future__ import annotations

from typing import Any

from marketplace.models import Order
from payments.integrations.webhooks import webhook_event_publish
from payments.models import Payout, Refund


def order_paid_announce(*, order: Order) -> None:
    seller_orders = list(order.seller_orders.select_related("seller").order_by("pk"))

    def data_for(seller_id: int | None) -> dict[str, Any]:
        return {
            "order": order.pk,
            "currency": order.currency,
            "total_minor": order.total_minor if seller_id is None else None,
            "paid_at": order.paid_at.isoformat() if order.paid_at else None,
            "seller_orders": [
                {
                    "id": so.pk,
                    "seller": so.seller.slug,
                    "gross_minor": so.gross_minor,
                    "commission_minor": so.commission_minor,
                    "seller_share_minor": so.seller_share_minor,
                }
                for so in seller_orders
                if seller_id is None or so.seller_id == seller_id
            ],
        }

    webhook_event_publish(
        event_type="order.paid",
        data_for=data_for,
        sellers=[so.seller_id for so in seller_orders],
        object_type="order",
        object_id=order.pk,
    )


def refund_created_announce(*, refund: Refund) -> None:
    lines = list(refund.lines.select_related("order_line__seller_order").order_by("pk"))

    def data_for(seller_id: int | None) -> dict[str, Any]:
        mine = [
            line
            for line in lines
            if seller_id is None or line.order_line.seller_order.seller_id == seller_id
        ]
        return {
            "refund": refund.pk,
            "order": refund.order_id,
            "currency": refund.currency,
            "amount_minor": refund.amount_minor if seller_id is None else None,
            "status": refund.status,
            "lines": [
                {
                    "order_line": line.order_line_id,
                    "amount_minor": line.amount_minor,
                    "seller_amount_minor": line.seller_amount_minor,
                }
                for line in mine
            ],
        }

    webhook_event_publish(
        event_type="refund.created",
        data_for=data_for,
        sellers={line.order_line.seller_order.seller_id for line in lines},
        object_type="refund",
        object_id=refund.pk,
    )


def payout_announce(*, payout: Payout, event: str) -> None:
    data = {
        "payout": payout.pk,
        "seller": payout.seller.slug,
        "currency": payout.currency,
        "amount_minor": payout.amount_minor,
        "status": payout.status,
        "failure_reason": payout.failure_reason,
    }
    webhook_event_publish(
        event_type=f"payout.{event}",
        data_for=lambda _: data,
        sellers=[payout.seller_id],
        object_type="payout",
        object_id=payout.pk,
    )
