"""What sellers, operators and customers read about money: the seller's dashboard,
earnings, statements and history, the operator console's figures, platform revenue,
reconciliation with the processor, and the emails about money (``notifications``).

Read-only over the books: it may import every other package of ``payments`` (for
their rules and figures), ``marketplace.models``, ``accounts`` and the shared kernel;
nothing in ``payments`` imports it.
"""
