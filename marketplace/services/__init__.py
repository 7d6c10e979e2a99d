"""The shop's services that need orders and money together: the cart and checkout,
placing an order (its commission and service fee from ``payments.revenue``), cancelling
a paid seller order (its refund from ``payments.collection``), products (listing fees)
and fulfilment.

The layer above ``payments`` (docs/architecture.md): it may import ``payments``,
``marketplace.orders``, ``marketplace.models``, ``accounts`` and the shared kernel;
only entry points import it.
"""
