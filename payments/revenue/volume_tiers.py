"""Volume tiers of a commission rule: the percentage by the seller's recent sales.

Rule for a rule's tiers (``volume_tiers_validate``): the rule has a currency
(sales are measured in it); the first tier starts at 0; each next tier starts
exactly where the one before ends (no overlap, no gap); only the last has no
top, and it must have none; each band ends above its start; each percentage
is from 0 to 100 %; amounts are whole minor units. Anything else is a
``ValidationError`` naming the bad tier, and nothing is saved.

``volume_tiers_save`` replaces every tier of the rule in one transaction,
audited on the rule. How a line picks its tier is payments/revenue/commission.py
(sales exactly at a tier's top take the next tier); lines keep what they got.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from marketplace.kernel.money import is_whole_number
from payments.ledger.audit import audit_record
from payments.models import CommissionRule, VolumeTier
from payments.models.commission import TierSpec, tier_money, tiers_text

NEGOTIATED_SCOPES = ("seller", "product")


def volume_tiers_validate(
    *, currency: str, tiers: Sequence[TierSpec], scope: str = "default"
) -> list[TierSpec]:
    """The tiers in order of their start, or a ``ValidationError`` naming every bad
    tier (module docstring). No tiers at all is valid: the rule's own percentage.
    Tiers are for default and category rules only: a seller's or a product's rule is
    negotiated terms and applies as it is (``payments.revenue.commission``), so tiers there
    would be saved and never used."""
    tiers = [tuple(tier) for tier in tiers]  # type: ignore[misc]
    if not tiers:
        return []
    if scope in NEGOTIATED_SCOPES:
        raise ValidationError(
            "Volume tiers apply to the platform default and category rules: a seller's or "
            "a product's rule is negotiated terms and applies as it is."
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise ValidationError(
            "Volume tiers need the rule's currency: the seller's sales are measured in it. "
            "Choose the rule's currency first."
        )
    errors: list[str] = []
    for number, (start, top, bps) in enumerate(tiers, start=1):
        if not is_whole_number(start) or (top is not None and not is_whole_number(top)):
            errors.append(f"Tier {number}: amounts are whole {currency} minor units.")
        if not is_whole_number(bps) or not 0 <= bps <= 10_000:
            errors.append(f"Tier {number}: the percentage is from 0 to 100%.")
    if errors:
        raise ValidationError(errors)
    ordered = sorted(tiers, key=lambda tier: tier[0])
    for number, (start, top, _) in enumerate(ordered, start=1):
        name = f"Tier {number} (from {tier_money(start, currency)})"
        if number == 1 and start != 0:
            errors.append(f"{name}: the first tier starts at {tier_money(0, currency)}.")
        if top is not None and top <= start:
            errors.append(f"{name}: it must end above where it starts.")
        if number < len(ordered):
            next_start = ordered[number][0]
            if top is None:
                errors.append(f"{name}: only the last tier has no upper end.")
            elif next_start < top:
                errors.append(
                    f"{name}: it overlaps the next tier, which starts at "
                    f"{tier_money(next_start, currency)} before this one ends at "
                    f"{tier_money(top, currency)}."
                )
            elif next_start > top:
                errors.append(
                    f"{name}: a gap from {tier_money(top, currency)} to "
                    f"{tier_money(next_start, currency)} before the next tier."
                )
        elif top is not None:
            errors.append(f"{name}: the last tier has no upper end (leave it empty).")
    if errors:
        raise ValidationError(errors)
    return ordered


@transaction.atomic
def volume_tiers_save(
    *,
    rule: CommissionRule,
    tiers: Sequence[TierSpec],
    by: User | None = None,
    reason: str = "",
    via: str = "code",
) -> list[VolumeTier]:
    """Replace all the rule's tiers with ``tiers`` (validated as the module docstring
    says, else nothing changes), in one transaction, recorded on the rule's history
    (the tiers before and after, in words and money: ``tiers_text``)."""

    rule = CommissionRule.objects.select_for_update().get(pk=rule.pk)
    ordered = volume_tiers_validate(currency=rule.currency, tiers=tiers, scope=rule.scope)
    before: list[TierSpec] = [
        (tier.from_minor, tier.up_to_minor, tier.percentage_bps)
        for tier in VolumeTier.objects.filter(rule=rule).order_by("from_minor")
    ]
    after: list[TierSpec] = [(start, top, bps) for start, top, bps in ordered]
    if before == after:
        return list(VolumeTier.objects.filter(rule=rule).order_by("from_minor"))
    VolumeTier.objects.filter(rule=rule).delete()
    saved = VolumeTier.objects.bulk_create(
        VolumeTier(rule=rule, from_minor=start, up_to_minor=top, percentage_bps=bps)
        for start, top, bps in ordered
    )
    audit_record(
        target=rule,
        action="changed",
        by=by,
        reason=reason,
        via=via,
        changes={
            "volume_tiers": [
                tiers_text(before, rule.currency),
                tiers_text(after, rule.currency),
            ]
        },
    )
    return saved
