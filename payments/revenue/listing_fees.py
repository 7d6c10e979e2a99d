"""Listing fees: a fee per product listed or renewed, charged from the seller's balance.

Rules:

- The fee that applies to a product at an instant is the active one (``active_from``
  at or before it, ``active_until`` after it or open) in the PRODUCT's currency: the
  product's category's fee, else its parent category's, else the platform default;
  within one level the most recently started wins. A fee in another currency does not
  apply (a category fee in EUR is fine to save; it charges only EUR products).
- A product is charged once per listing period: key
  ``listing:<product id>:<listed_from>``, unique on the charge row and on the ledger
  transaction. Listing it sets ``Product.listed_until`` to ``listed_from`` +
  ``listing_days`` of the fee. A first listing (created active, or listed again after
  its listing ended) starts now; a renewal starts where the last listing ended, so
  listing periods follow each other without a gap or an overlap.
- The charge moves the fee from the seller's ``available`` balance to the platform's
  ``listing_fees`` account (seller available +fee, listing_fees -fee), one ledger
  transaction; a short balance leaves a debt the next payout nets, as with plan fees.
  A zero fee records the charge row with no ledger transaction.
- No fee applying: nothing is charged and the listing has no end (``listed_until``
  stays empty), so it is never renewed until a fee applies when it is listed again.
- Charging takes the seller's money lock (payments.ledger.locks) and reads the product's
  listing again under it: a double click or two renewals at once charge once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from marketplace.kernel.money import is_whole_number
from marketplace.models import Product
from payments.ledger.audit import audited_save
from payments.ledger.locks import sellers_money_lock
from payments.ledger.posting import Posting, ledger_post, platform_account, seller_account
from payments.models import LedgerAccount, LedgerTransaction, ListingCharge, ListingFee

Kind = LedgerAccount.Kind
ChargeKind = ListingCharge.Kind


def listing_fee_save(
    *, fee: ListingFee, by: User | None = None, reason: str = "", via: str = "code"
) -> ListingFee:
    """Validate and save a listing fee, audited: the amount is a whole number of minor
    units, not negative; the currency is supported; a category fee names a category and
    a default fee none; a listing lasts at least a day; the period is in order. Products
    already listed keep their period; the fee applies from the next listing on."""
    errors: dict[str, str] = {}
    if not is_whole_number(fee.amount_minor):
        errors["amount_minor"] = "The fee is a whole number of minor units."
    elif fee.amount_minor < 0:
        errors["amount_minor"] = "The fee cannot be negative."
    if not is_whole_number(fee.listing_days) or fee.listing_days < 1:
        errors["listing_days"] = "A listing lasts at least one day."
    if fee.currency not in SUPPORTED_CURRENCIES:
        errors["currency"] = f"{fee.currency!r} is not a supported currency."
    if fee.scope == ListingFee.Scope.CATEGORY and fee.category_id is None:
        errors["category"] = "Choose the category this fee is for."
    if fee.scope == ListingFee.Scope.DEFAULT and fee.category_id is not None:
        errors["category"] = "The platform default fee is for no category."
    if errors:
        raise ValidationError(errors)
    audited_save(instance=fee, by=by, reason=reason, via=via)
    return fee


def listing_fee_for(*, product: Product, at: datetime | None = None) -> ListingFee | None:
    """The fee that applies to listing ``product`` at ``at`` (module rules), or None."""
    at = at or timezone.now()
    category = product.category
    levels = {product.category_id: 3}
    if category.parent_id:
        levels[category.parent_id] = 2
    fees = ListingFee.objects.filter(
        Q(active_from__lte=at),
        Q(active_until__isnull=True) | Q(active_until__gt=at),
        Q(scope=ListingFee.Scope.DEFAULT) | Q(category_id__in=list(levels)),
        currency=product.currency,
    )
    best: tuple[tuple[int, datetime, int], ListingFee] | None = None
    for fee in fees:
        level = 1 if fee.category_id is None else levels[fee.category_id]
        key = (level, fee.active_from, fee.pk)
        if best is None or key > best[0]:
            best = (key, fee)
    return best[1] if best else None


def product_listing_charge(
    *, product: Product, kind: str = ChargeKind.LISTED, at: datetime | None = None
) -> ListingCharge | None:
    """Charge the listing fee of one listing period of ``product`` and extend its
    listing (module rules). ``listed``: a listing starting at ``at``, if the product's
    listing has ended (or it never had one); ``renewed``: the period after the current
    listing, if that has ended by ``at``. Returns the charge (None: nothing due or no
    fee applies). Safe to run twice and concurrently."""
    at = (at or timezone.now()).replace(microsecond=0)
    with transaction.atomic():
        sellers_money_lock([product.seller_id])
        listed_until = (
            Product.objects.filter(pk=product.pk).values_list("listed_until", flat=True).get()
        )
        product.listed_until = listed_until
        if listed_until is not None and listed_until > at:
            return None  # listed already
        if kind == ChargeKind.RENEWED and listed_until is not None:
            listed_from = listed_until
        else:
            listed_from = at
        fee = listing_fee_for(product=product, at=listed_from)
        if fee is None:
            return None
        charge = ListingCharge(
            product=product,
            seller_id=product.seller_id,
            fee=fee,
            kind=kind,
            currency=product.currency,
            amount_minor=fee.amount_minor,
            listed_from=listed_from,
            listed_until=listed_from + timedelta(days=fee.listing_days),
            idempotency_key=f"listing:{product.pk}:{listed_from.isoformat()}",
        )
        charge.save(force_insert=True)
        if charge.amount_minor:
            charge.ledger_transaction = ledger_post(
                kind=LedgerTransaction.Kind.LISTING_FEE,
                idempotency_key=charge.idempotency_key,
                reference_type="listing_charge",
                reference_id=charge.pk,
                postings=[
                    Posting(
                        seller_account(product.seller, Kind.AVAILABLE, charge.currency),
                        charge.amount_minor,
                    ),
                    Posting(
                        platform_account(Kind.LISTING_FEES, charge.currency), -charge.amount_minor
                    ),
                ],
                description=f"Listing fee — {product.title}",
            )
            charge.save(update_fields=["ledger_transaction"])
        product.listed_until = charge.listed_until
        Product.objects.filter(pk=product.pk).update(listed_until=charge.listed_until)
    return charge


def listings_renew_due(now: datetime | None = None) -> int:
    """Renew (charge again) every active product whose listing has ended by ``now``
    (Celery beat, daily); one database transaction per product. Returns how many were
    charged. A product more than one period behind is renewed one period per run."""
    now = now or timezone.now()
    due = (
        Product.objects.filter(is_active=True, listed_until__lte=now)
        .select_related("seller", "category")
        .order_by("seller_id", "pk")
    )
    return sum(
        product_listing_charge(product=product, kind=ChargeKind.RENEWED, at=now) is not None
        for product in due
    )


def product_listed(*, product: Product, at: datetime | None = None) -> ListingCharge | None:
    """The catalog's hook: a product was created active or listed again. Charges a new
    listing if its listing has ended (or it never had one) and a fee applies."""
    if not product.is_active:
        return None
    at = at or timezone.now()
    if product.listed_until is not None and product.listed_until > at:
        return None
    if listing_fee_for(product=product, at=at) is None:
        return None  # one query, no lock, where the platform charges no listing fees
    return product_listing_charge(product=product, kind=ChargeKind.LISTED, at=at)
