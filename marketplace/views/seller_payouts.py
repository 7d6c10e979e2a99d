"""A seller's "Get paid" page: connect a payout account at the processor; their payouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from accounts.decorators import seller_required
from payments.collection.onboarding import seller_account_sync, seller_onboarding_start
from payments.ledger.balances import seller_balance, seller_currencies
from payments.models import Clawback, LedgerTransaction, Payout, PayoutStep
from payments.payouts.breakdown import payout_bank_last4, payout_breakdown, payout_figures
from payments.payouts.policies import payout_policy_for
from payments.payouts.sending import RETRY_LATER_CODES
from payments.processors import get_processor
from payments.processors.base import ProcessorError
from payments.reporting.earnings import seller_debt
from payments.reporting.earnings_schedule import next_payout_estimate


@seller_required
@require_http_methods(["GET", "POST"])
def payouts_setup(request):
    if request.method == "POST":
        try:
            link = seller_onboarding_start(
                seller=request.seller,
                refresh_url=request.build_absolute_uri(reverse("marketplace:seller_payouts")),
                return_url=request.build_absolute_uri(reverse("marketplace:seller_payouts_return")),
            )
        except ProcessorError:
            messages.error(
                request, "The payment service is not answering. Please try again shortly."
            )
            return redirect("marketplace:seller_payouts")
        return redirect(link.url)
    seller = request.seller
    currencies = seller_currencies(seller)
    summaries = []
    for currency in currencies:
        balance = seller_balance(seller=seller, currency=currency)
        summaries.append(
            {
                "balance": balance,
                "debt": seller_debt(seller=seller, currency=currency, available=balance.available),
                "next": next_payout_estimate(
                    seller=seller, currency=currency, available=balance.available
                ),
            }
        )
    payouts = list(seller.payouts.order_by("-created_at", "-id")[:50])
    figures = payout_figures(payouts=payouts)
    return render(
        request,
        "marketplace/seller/payouts.html",
        {
            "seller": seller,
            "summaries": summaries,
            "payouts": [
                (payout, figures[payout.pk], payout_bank_last4(payout, seller))
                for payout in payouts
            ],
            "policy": payout_policy_for(seller),
        },
    )


@seller_required
@require_GET
def payout_detail(request, pk: int):
    payout = get_object_or_404(request.seller.payouts, pk=pk)
    return render(
        request,
        "marketplace/seller/payout_detail.html",
        {
            "payout": payout,
            "figures": payout_figures(payouts=[payout])[payout.pk],
            "last4": payout_bank_last4(payout, request.seller),
            "breakdown": payout_breakdown(payout=payout),
            "how_paid": payout_how_paid(payout),
        },
    )


# --- "How it was paid": the payout's processor steps in a seller's words ----------------------


@dataclass(frozen=True)
class Transfer:
    at: datetime | None
    amount_minor: int


@dataclass(frozen=True)
class BankPayout:
    at: datetime
    amount_minor: int
    status: str  # in words
    processor_id: str


@dataclass(frozen=True)
class TakenBack:
    amount_minor: int
    text: str  # follows the amount: "taken back for refund #3"


@dataclass
class HowPaid:
    transfer: Transfer | None = None
    bank_payouts: list[BankPayout] = field(default_factory=list)
    taken_back: list[TakenBack] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transfer or self.bank_payouts or self.taken_back)


def payout_how_paid(payout: Payout) -> HowPaid:
    """The transfer to the seller's payout account, each bank payout attempt that reached
    the processor, and what was taken back for refunds and lost disputes; three
    queries at most, whatever the number of attempts."""
    Outcome = PayoutStep.Outcome
    how = HowPaid()
    steps = list(payout.steps.order_by("started_at", "pk"))
    for step in steps:
        made = step.outcome in (Outcome.SUCCEEDED, Outcome.ADOPTED) and step.processor_object_id
        if step.kind == PayoutStep.Kind.TRANSFER and made:
            how.transfer = Transfer(step.finished_at or step.started_at, step.amount_minor)
    if how.transfer is None and payout.processor_transfer_id:  # sent before steps were kept
        how.transfer = Transfer(payout.sent_at, payout.amount_minor)
    bank = [
        step
        for step in steps
        if step.kind == PayoutStep.Kind.BANK_PAYOUT
        and (
            step.processor_object_id
            # Refused outright; a refusal that passes by itself is retried quietly.
            or (step.outcome == Outcome.REFUSED and step.error_code not in RETRY_LATER_CODES)
        )
    ]
    failed = {step.pk: _returned_key(payout, step) for step in bank if _failed(step)}
    returned = (
        set(
            LedgerTransaction.objects.filter(idempotency_key__in=failed.values()).values_list(
                "idempotency_key", flat=True
            )
        )
        if failed
        else set()
    )
    for step in bank:
        if step.pk in failed:
            gone = "Returned by your bank" if failed[step.pk] in returned else "Refused"
            status = f"{gone}: {step.message}" if step.message else gone
        elif step.outcome == Outcome.REFUSED:
            status = f"Refused: {step.message}" if step.message else "Refused"
        elif step.object_status == "paid":
            status = "Paid to your bank"
        else:
            status = "On its way to your bank"
        how.bank_payouts.append(
            BankPayout(
                step.started_at,
                step.amount_minor,
                status,
                step.processor_object_id,
            )
        )
    for clawback in payout.clawbacks.order_by("created_at", "pk"):
        how.taken_back.append(_taken_back(clawback))
    return how


def _failed(step: PayoutStep) -> bool:
    return step.object_status in ("failed", "canceled")


def _returned_key(payout: Payout, step: PayoutStep) -> str:
    """The ledger key of a bank payout's return (``payments/payouts/settlement.py``): it
    exists when the bank payout failed after it was paid."""
    if step.idempotency_key == f"{payout.idempotency_key}-payout":
        return f"payout:{payout.pk}:returned"  # made before bank payouts had attempts
    return f"payout:{payout.pk}:bank-{step.attempt}:returned"


def _taken_back(clawback: Clawback) -> TakenBack:
    Status = Clawback.Status
    why = f"refund #{clawback.reason_id}" if clawback.reason_type == "refund" else "a lost dispute"
    if clawback.status == Status.REVERSED:
        return TakenBack(clawback.amount_minor, f"taken back for {why}")
    if clawback.status == Status.IN_FLIGHT:
        return TakenBack(clawback.amount_minor, f"being taken back for {why}")
    if clawback.status == Status.PENDING:
        return TakenBack(clawback.wanted_minor, f"to be taken back for {why}")
    return TakenBack(
        clawback.wanted_minor,
        f"for {why} not taken back from this payout: it comes out of your balance instead",
    )


@seller_required
@require_GET
def payouts_return(request):
    seller = request.seller
    if seller.payout_account_id:
        try:
            seller = (
                seller_account_sync(
                    processor_name=get_processor().name, account_id=seller.payout_account_id
                )
                or seller
            )
        except ProcessorError:
            messages.error(
                request, "We could not read your payout account; it will update shortly."
            )
    if seller.can_receive_payouts:
        messages.success(request, "Your payout account is ready. You will be paid automatically.")
    else:
        messages.info(request, "Your payout account still needs some details.")
    return redirect("marketplace:seller_payouts")
