"""The books: posting balanced transactions (``posting``), reading balances, the
row locks every money service takes in one order (``locks``), the audit trail of
operators' actions, and retrying work that lost a lock conflict.

May import: ``payments.models``, ``marketplace.models``, ``marketplace.orders`` (the
order's lock, step 1 of the lock order), ``accounts.models`` and the shared kernel.
Every other package of ``payments`` builds on this one; it imports none of them.
"""
