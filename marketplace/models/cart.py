"""A signed-in customer's cart, kept between visits and devices.

A visitor's cart lives in their session and is merged into this one at login.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class CartItem(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cart_items"
    )
    product = models.ForeignKey("marketplace.Product", on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField()
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "product"], name="marketplace_cartitem_once"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="marketplace_cartitem_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_id}"
