"""Money out to sellers: holds that make earnings available, payout policies, runs
that plan payouts in chunks (``planning``, ``runs``), the guard every payout passes,
sending through the processor, the processor's answers (``settlement``), operators'
controls, the breakdown of a payout and the bank-transfer file.

May import: ``processors``, ``integrations``, ``ledger``, ``payments.models``,
``marketplace.models``, ``accounts`` and the shared kernel. Never ``collection`` or
``reporting`` (they build on payouts), nor ``revenue`` (contract "fees-payouts-apart").
"""
