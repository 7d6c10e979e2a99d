"""Sellers' payout accounts at the processor: onboarding and status."""

from __future__ import annotations

from accounts.models import Seller
from payments.processors import get_processor
from payments.processors.base import ConnectedAccount, OnboardingLink


def _status_of(account: ConnectedAccount) -> str:
    """Enabled once transfers reach the account and it can pay out to its bank. Sellers'
    accounts have only the ``transfers`` capability (the platform takes the payments),
    so ``charges_enabled`` never becomes true for them and is not asked for."""
    if account.can_be_paid:
        return Seller.PayoutStatus.ENABLED
    if account.details_submitted:
        return Seller.PayoutStatus.RESTRICTED
    return Seller.PayoutStatus.ONBOARDING


def seller_onboarding_start(*, seller: Seller, refresh_url: str, return_url: str) -> OnboardingLink:
    """Create the seller's connected account once (key ``seller-<id>-account``) and
    return the link to the processor's onboarding form."""
    processor = get_processor()
    if not seller.payout_account_id:
        account = processor.account_create(
            email=seller.user.email,
            country=seller.country.code,
            idempotency_key=f"seller-{seller.pk}-account",
        )
        Seller.objects.filter(pk=seller.pk).update(
            payout_account_id=account.id, payout_status=_status_of(account)
        )
        seller.refresh_from_db()
    return processor.account_onboarding_link(
        account_id=seller.payout_account_id, refresh_url=refresh_url, return_url=return_url
    )


def seller_account_sync(*, processor_name: str, account_id: str) -> Seller | None:
    """Read the account from the processor and record what the seller can do now."""
    seller = Seller.objects.filter(payout_account_id=account_id).first()
    if seller is None:
        return None
    account = get_processor(processor_name).account_get(account_id=account_id)
    status = _status_of(account)
    if seller.payout_status != status:
        Seller.objects.filter(pk=seller.pk).update(payout_status=status)
        seller.payout_status = status
    return seller
