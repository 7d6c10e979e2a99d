"""Money in, and money given back: paying for an order at the processor (``checkout``),
the capture that splits it in the ledger (``captures``), refunds and refund requests,
disputes, clawbacks from sellers' transfers, unpaid orders expiring, the processor's
incoming webhooks (``webhooks``) and sellers' payout accounts (``onboarding``).

May import: ``payouts`` (a payout's events arrive with the processor's other events; a
clawback is posted against a payout's accounts), ``revenue``, ``processors``,
``integrations`` (to announce what happened), ``ledger``, ``payments.models``,
``marketplace.models``, ``marketplace.orders``, ``accounts`` and the shared kernel.
Never ``reporting`` (contract "money-apart").
"""
