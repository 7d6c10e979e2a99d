"""Proofs that the ledger is consistent, run by ``manage.py check_ledger``.

The ledger's own books (``books``, docs/money.md section 7):

1. Every transaction has entries, and they sum to zero in each currency.
2. Every entry is in its account's currency.
3. Every account's running balance equals the sum of its entries.
4. For every order whose payment was captured, the processor received its
   total (lines and service fee) once, and for every line, the seller's share and the commission
   still held in the ledger (pending, available, held for a dispute) equal
   the line's parts less what succeeded refunds gave back and lost disputes
   took of each.
5. Every refund that succeeded is in the ledger for its amount, and no other
   refund is.
6. The refund counters on lines, seller orders and orders equal the refunds
   that did not fail.

Invariants proved from the outside, across the business tables and the ledger
(``sales``, ``sellers``, ``payouts``; each function's docstring has the exact rule):

9.  Per captured order, succeeded refunds plus lost disputes are at most its total.
10. No live refund was created on an order while a dispute of its payment was
    open or (since) lost.
11. Every payment captured by the local processor has its fee posted.
12. No seller account is in debt, except ``available`` by what refunds and
    disputes posted since the seller's last payout explain.
13. Per seller and currency, what was paid out is at most what was earned and kept.
14. A payout's amount is covered by its breakdown (with the reserve and what
    earlier payouts left); failed and cancelled payouts have none.
15. No payout waits to be sent for a seller whose payouts are frozen.
16. Each payout is sent, paid and failed at most once, for its amount, and its
    status agrees with the ledger.
17. Every plan charge or credit and every listing charge agrees with its ledger
    transaction, and every fee transaction belongs to one (``fees``).
18. Per order, the service fee posted with the payment, less what refunds gave back
    and lost disputes took, equals the order's fee less its succeeded refunds' and lost
    disputes' fee parts; the order's fee-refunded counter equals its refunds that did
    not fail (``sales.check_service_fees``, run with check 6).

The work is a fixed number of queries, whatever the size of the ledger; the
per-order, per-line, per-account and per-payout comparisons stream over the rows.
"""

from __future__ import annotations

from payments.checks.books import check_orders, check_refunds, check_transactions
from payments.checks.fees import check_fee_charges
from payments.checks.payouts import check_payouts
from payments.checks.report import LedgerReport
from payments.checks.sales import check_given_back, check_local_fees, check_refunds_under_dispute
from payments.checks.sellers import check_paid_out_within_earned, check_seller_debts
from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

__all__ = ["LedgerReport", "ledger_check"]


def ledger_check() -> LedgerReport:
    report = LedgerReport(
        transactions=LedgerTransaction.objects.count(),
        entries=LedgerEntry.objects.count(),
        accounts=LedgerAccount.objects.count(),
    )
    problems = report.problems
    check_transactions(problems)
    check_orders(report)
    check_refunds(problems)
    check_given_back(problems)
    check_refunds_under_dispute(problems)
    check_local_fees(problems)
    debts = check_seller_debts(problems)
    check_paid_out_within_earned(problems, debts)
    check_payouts(problems)
    check_fee_charges(problems)
    return report
