"""Money in, and money given back: paying for an order at the processor (``checkout``),
the capture that splits it in the ledger (``captures``), refunds and refund requests,
disputes, clawbacks from sellers' transfers, unpaid orders expiring, the processor's
incoming webhooks (``webhooks``) and sellers' payout accounts (``onboarding``).

May import: ``ledger``, ``revenue``, ``processors``, ``integrations`` (to announce what
happened), ``payments.models``, ``marketplace.models``, ``marketplace.orders``,
``accounts`` and the shared kernel. Never ``payouts`` or ``reporting``.
"""
