"""One row per checkout form that placed an order, so that a form places one order."""

from django.conf import settings
from django.db import models


class CheckoutSubmission(models.Model):
    """The one-time token of a checkout form and the order its first submit placed.

    Written in the order's transaction: a second submit of the same form finds
    this row (or, at the same instant, waits on the unique index for it) and
    shows the first order instead of placing another.
    """

    token = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    order = models.OneToOneField(
        "marketplace.Order", on_delete=models.CASCADE, related_name="checkout_submission"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Checkout of order #{self.order_id}"
