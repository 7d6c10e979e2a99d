"""Metadata: an integrator's own key-value pairs on orders, refunds and payouts.

The limits are Stripe's, so a value copied from one to the other always fits:
at most 50 keys, each key at most 40 characters and without square brackets,
each value a string of at most 500 characters. An update merges into what is
there; a key set to an empty string (or ``null``) is removed. Metadata is
never used by the marketplace itself: it only carries the integrator's
references (their order number, a support ticket) and is returned as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from accounts.models import User
from marketplace.kernel.errors import InvalidRequest
from payments.ledger.audit import audit_record
from payments.ledger.locks import payout_lock
from payments.models import Payout, Refund

MAX_KEYS = 50
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500


class InvalidMetadata(InvalidRequest):
    """Metadata outside the limits; ``param`` names the key at fault."""

    code = "invalid_metadata"
    param = "metadata"


def metadata_merge(current: Mapping[str, str], update: Any) -> dict[str, str]:
    """``current`` with ``update`` applied: new and changed keys set, keys whose
    value is empty (or null) removed. Refuses anything outside the limits."""
    if not isinstance(update, Mapping):
        raise InvalidMetadata("Metadata must be an object of string keys and string values.")
    merged = dict(current)
    for key, value in update.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidMetadata("Metadata keys must be non-empty strings.")
        param = f"metadata[{key}]"
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidMetadata(
                f"Metadata keys are at most {MAX_KEY_LENGTH} characters.", param=param
            )
        if "[" in key or "]" in key:
            raise InvalidMetadata("Metadata keys cannot contain [ or ].", param=param)
        if "\x00" in key:  # PostgreSQL's jsonb cannot hold U+0000
            raise InvalidMetadata("Metadata keys cannot contain the NUL character.")
        if value is None or value == "":
            merged.pop(key, None)
            continue
        if not isinstance(value, str):
            raise InvalidMetadata("Metadata values must be strings.", param=param)
        if "\x00" in value:  # PostgreSQL's jsonb cannot hold U+0000
            raise InvalidMetadata("Metadata values cannot contain the NUL character.", param=param)
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidMetadata(
                f"Metadata values are at most {MAX_VALUE_LENGTH} characters.", param=param
            )
        merged[key] = value
    if len(merged) > MAX_KEYS:
        raise InvalidMetadata(f"Metadata holds at most {MAX_KEYS} keys.")
    return merged


def _metadata_changes(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[Any]]:
    keys = sorted(set(before) | set(after))
    return {
        f"metadata[{key}]": [before.get(key), after.get(key)]
        for key in keys
        if before.get(key) != after.get(key)
    }


def payout_metadata_update(*, payout: Payout, by: User, metadata: Any, via: str = "code") -> Payout:
    """An operator merges ``metadata`` into a payout's (``metadata_merge``'s rules), under
    the payout's lock, recorded in its audit trail; status and amounts are untouched."""
    with transaction.atomic():
        payout = payout_lock(payout.pk)
        before = dict(payout.metadata)
        payout.metadata = metadata_merge(before, metadata)
        payout.save(update_fields=["metadata"])
        changes = _metadata_changes(before, payout.metadata)
        if changes:
            audit_record(target=payout, action="metadata", by=by, via=via, changes=changes)
    return payout


def refund_metadata_update(*, refund: Refund, by: User, metadata: Any, via: str = "code") -> Refund:
    """An operator merges ``metadata`` into a refund's (``metadata_merge``'s rules), under
    the refund's lock, recorded in its audit trail; status and amounts are untouched."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update(no_key=True, of=("self",)).get(pk=refund.pk)
        before = dict(refund.metadata)
        refund.metadata = metadata_merge(before, metadata)
        refund.save(update_fields=["metadata"])
        changes = _metadata_changes(before, refund.metadata)
        if changes:
            audit_record(target=refund, action="metadata", by=by, via=via, changes=changes)
    return refund
