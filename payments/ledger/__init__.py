"""The books: posting balanced transactions (``posting``), reading balances, the
row locks every money service takes in one order (``locks``), the audit trail of
operators' actions, and retrying work that lost a lock conflict.

May import: ``payments.models``, ``payments.processors.base``, ``marketplace.models``,
``marketplace.orders``, ``accounts.models`` and the shared kernel. Every other package
of ``payments`` builds on this one; it imports none of them.
"""
