"""What the platform earns: the commission on each line (rules, volume tiers, a
seller's plan), the customer's service fee, sellers' monthly plan fees and listing
fees.

May import: ``ledger``, ``payments.models``, ``marketplace.models``, ``accounts`` and
the shared kernel. Never ``collection``, ``payouts``, ``reporting``, ``integrations``
or ``processors`` (contract "revenue-below").
"""
