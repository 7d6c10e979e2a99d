"""Helpers of the integrations tests."""


def publish_order_paid(seller):
    """An order.paid event of ``seller``, published to the endpoints that listen."""
    from payments.integrations.webhooks import webhook_event_publish

    return webhook_event_publish(
        event_type="order.paid",
        data_for=lambda seller_id: {"seller": seller_id},
        sellers=[seller.pk],
        object_type="order",
        object_id=1,
    )
