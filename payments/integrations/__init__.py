"""What integrators get: signed webhooks to their endpoints (``webhooks``), with the
address policy, secrets and transport behind them, the events announced
(``announcements``) and listed (``events``), and their metadata on our objects.

May import: ``ledger``, ``payments.models``, ``marketplace.models``, ``accounts`` and
the shared kernel. Never ``collection``, ``payouts`` or ``reporting``: they announce
through this package, not the other way round.
"""
