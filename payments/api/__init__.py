"""The money part of the REST API: commission rules, payout policies, payouts and
runs, balances and ledger entries. Every write calls the same service as the admin."""
