"""What sellers, operators and customers read about money: the seller's dashboard,
earnings, statements and history, the operator console's figures, platform revenue,
reconciliation with the processor, and the emails about money (``notifications``).

Read-only over the books: it may import ``payouts`` (policies, holds, what payouts
claim), ``revenue``, ``integrations``, ``processors``, ``ledger``, ``payments.models``,
``marketplace.models``, ``accounts`` and the shared kernel; never ``collection``
(contract "money-apart"). Only entry points import it.
"""
