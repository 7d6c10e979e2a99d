"""Invariants of what the platform owes each seller (checks 12 and 13).

Sign convention (payments/models/ledger.py): a seller account's raw balance is
negative when the platform owes the seller, positive when the seller owes the
platform (a debt).
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import F, Q, Sum

from payments.checks.report import pair_sums, sums
from payments.models import (
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Refund,
    RefundLine,
)

Kind = LedgerAccount.Kind
TxnKind = LedgerTransaction.Kind
SellerCurrency = tuple[int, str]
# What may put a seller's available account in debt: a refund or a dispute of a
# sale already released to available (after its money was paid out), an
# operator's adjustment, or a fee charged from the balance (a plan's monthly fee,
# a listing fee). Only those not yet netted by a payout (not in any payout's
# breakdown) still explain a debt.
DEBT_CAUSES = (
    TxnKind.REFUND,
    TxnKind.DISPUTE_OPENED,
    TxnKind.ADJUSTMENT,
    TxnKind.PLAN_FEE,
    TxnKind.LISTING_FEE,
)


def _seller_accounts() -> dict[int, tuple[int, str, str, int]]:
    """Every seller account: id -> (seller id, kind, currency, raw balance)."""
    rows = LedgerAccount.objects.filter(seller__isnull=False).values_list(
        "pk", "seller_id", "kind", "currency", "balance_minor"
    )
    return {
        pk: (seller_id, kind, currency, balance) for pk, seller_id, kind, currency, balance in rows
    }


def check_seller_debts(problems: list[str]) -> dict[SellerCurrency, int]:
    """12. No seller account is in debt (raw balance above 0), except ``available``
    by at most what refunds, disputes, adjustments, plan fees and listing fees posted
    to it since its last payout took (its positive entries of those kinds in no
    payout's breakdown; the next payout nets them). ``pending``, ``in_transit`` and
    ``disputed`` are never in debt. Returns each seller's debt on available, per currency."""
    accounts = _seller_accounts()
    in_debt = [pk for pk, (_, _, _, balance) in accounts.items() if balance > 0]
    debts: dict[SellerCurrency, int] = {}
    if not in_debt:
        return debts
    explained = sums(
        LedgerEntry.objects.filter(
            account__balance_minor__gt=0,
            account__kind=Kind.AVAILABLE,
            transaction_kind__in=DEBT_CAUSES,
            amount_minor__gt=0,
            payout_item__isnull=True,
        ),
        "account_id",
    )
    for pk in sorted(in_debt):
        seller_id, kind, currency, balance = accounts[pk]
        if kind != Kind.AVAILABLE:
            problems.append(
                f"Seller #{seller_id}: the {kind} account ({currency}) is in debt by {balance}; "
                f"a {kind} balance never is."
            )
            continue
        debts[seller_id, currency] = balance
        cause = explained.get(pk, 0)
        if balance > cause:
            problems.append(
                f"Seller #{seller_id}: the available account ({currency}) is in debt by "
                f"{balance}, but refunds and disputes since the last payout explain only {cause}."
            )
    return debts


def check_paid_out_within_earned(problems: list[str], debts: dict[SellerCurrency, int]) -> None:
    """13. Per seller and currency, what was paid out (payouts sent less payouts
    failed and clawbacks, from the ledger's in-transit entries) is at most what the seller
    earned and kept: the seller shares captured (the capture entries on their
    pending account, which check 4 proves equal to each paid line's share), less
    the processor fee parts the seller bore (posted to their pending account when
    ``PAYMENTS_PROCESSOR_FEE_PAYER=sellers``; 0 when the platform bears fees),
    less the seller parts of succeeded
    refunds and of lost disputes and of open disputes (held, not payable), from
    the refund and dispute rows, plus their debt on available (paid out ahead of
    a refund)."""
    paid_out = pair_sums(
        LedgerEntry.objects.filter(
            account__kind=Kind.IN_TRANSIT,
            # Clawbacks take back part of what was sent.
            transaction_kind__in=(
                TxnKind.PAYOUT_SENT,
                TxnKind.PAYOUT_FAILED,
                TxnKind.TRANSFER_REVERSED,
            ),
        ),
        ("account__seller_id", "currency"),
        "amount_minor",
    )
    if not paid_out:
        return
    earned = pair_sums(
        LedgerEntry.objects.filter(
            account__kind=Kind.PENDING, transaction_kind=TxnKind.PAYMENT_CAPTURED
        ),
        ("account__seller_id", "currency"),
        "amount_minor",
    )
    earned = {key: -amount for key, amount in earned.items()}
    fees = pair_sums(
        LedgerEntry.objects.filter(
            account__kind=Kind.PENDING, transaction_kind=TxnKind.PROCESSOR_FEE
        ),
        ("account__seller_id", "currency"),
        "amount_minor",
    )
    # Plan fees (less credits) and listing fees the seller paid from available.
    charged = pair_sums(
        LedgerEntry.objects.filter(
            account__kind=Kind.AVAILABLE,
            transaction_kind__in=(TxnKind.PLAN_FEE, TxnKind.PLAN_FEE_CREDIT, TxnKind.LISTING_FEE),
        ),
        ("account__seller_id", "currency"),
        "amount_minor",
    )
    refunded = pair_sums(
        RefundLine.objects.filter(refund__status=Refund.Status.SUCCEEDED),
        ("order_line__seller_order__seller_id", "refund__currency"),
        "seller_amount_minor",
    )
    disputed = (
        DisputeLine.objects.filter(dispute__status__in=(Dispute.Status.LOST, Dispute.Status.OPEN))
        .values_list("order_line__seller_order__seller_id", "dispute__currency")
        .annotate(
            lost=Sum(
                F("seller_amount_minor") - F("refunded_seller_minor"),
                filter=Q(dispute__status=Dispute.Status.LOST),
            ),
            held=Sum(
                F("seller_amount_minor") - F("refunded_seller_minor"),
                filter=Q(dispute__status=Dispute.Status.OPEN),
            ),
        )
        .order_by()
    )
    taken: dict[SellerCurrency, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for seller_id, currency, lost, held in disputed:
        taken[seller_id, currency] = (int(lost or 0), int(held or 0))
    for (seller_id, currency), in_transit in sorted(paid_out.items()):
        sent = -in_transit
        lost, held = taken[seller_id, currency]
        kept = (
            earned.get((seller_id, currency), 0)
            - fees.get((seller_id, currency), 0)
            - charged.get((seller_id, currency), 0)
            - refunded.get((seller_id, currency), 0)
            - lost
            - held
        )
        debt = debts.get((seller_id, currency), 0)
        if sent > kept + debt:
            problems.append(
                f"Seller #{seller_id} ({currency}): paid out {sent}, more than earned and kept "
                f"{kept} (shares {earned.get((seller_id, currency), 0)}, fees "
                f"{fees.get((seller_id, currency), 0)}, refunds "
                f"{refunded.get((seller_id, currency), 0)}, lost disputes {lost}, open disputes "
                f"{held}) plus the debt carried {debt}. Plan and listing fees charged: "
                f"{charged.get((seller_id, currency), 0)}."
            )
