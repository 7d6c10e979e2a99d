"""Money out to sellers: holds that make earnings available, payout policies, runs
that plan payouts in chunks (``planning``, ``runs``), the guard every payout passes,
sending through the processor, the processor's answers (``settlement``), operators'
controls, the breakdown of a payout and the bank-transfer file.

May import: ``ledger``, ``processors``, ``integrations``, ``collection`` (a clawback
of a refund is taken from the next transfer), ``payments.models``,
``marketplace.models``, ``accounts`` and the shared kernel. Never ``reporting``.
"""
