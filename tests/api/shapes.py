"""Request bodies the API tests share."""

# A shipping address as ``POST /api/v1/orders/`` and the cart checkout take it.
SHIPPING = {
    "name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "12345",
    "country": "US",
}
