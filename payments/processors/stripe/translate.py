"""Stripe's objects read into the dataclasses of ``payments/processors/base.py``: no
SDK object leaves the adapter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import stripe

from payments.processors.base import (
    ConnectedAccount,
    Payment,
    Payout,
    ProcessorEvent,
    Transfer,
    TransferReversal,
    arrival_on,
)

# --- SDK objects to our dataclasses ---------------------------------------------------------


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def id_of(value: str | _HasId | None) -> str:
    """The id of an expandable field, expanded or not."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.id


def payment_of(intent: stripe.PaymentIntent) -> Payment:
    # Fields Stripe may leave out of an answer (not expanded, not set yet) are read
    # with a default: a missing field must never lose the PaymentIntent's id.
    charge = getattr(intent, "latest_charge", None)
    fee_minor: int | None = None
    if charge is not None and not isinstance(charge, str):
        balance_transaction = getattr(charge, "balance_transaction", None)
        if balance_transaction is not None and not isinstance(balance_transaction, str):
            # In the balance (settlement) currency, which may differ from ``currency``.
            fee_minor = balance_transaction.fee
    error = getattr(intent, "last_payment_error", None)
    return Payment(
        id=intent.id,
        status=intent.status,
        amount_minor=intent.amount,
        currency=intent.currency.upper(),
        client_secret=optional_str(intent, "client_secret"),
        charge_id=id_of(charge),
        failure_message=optional_str(error, "message") if error else "",
        fee_minor=fee_minor,
        next_action=next_action_of(intent),
    )


def next_action_of(intent: stripe.PaymentIntent) -> dict[str, Any] | None:
    """The PaymentIntent's ``next_action`` as plain JSON, or None: null, left out of the
    answer, or not an object with a ``type`` (read defensively, like every optional field)."""
    action = getattr(intent, "next_action", None)
    if isinstance(action, stripe.StripeObject):
        values = action.to_dict(for_json=True)
    elif isinstance(action, Mapping):
        values = dict(action)
    else:
        return None
    return values if isinstance(values.get("type"), str) else None


def connected_account_of(account: stripe.Account) -> ConnectedAccount:
    requirements = getattr(account, "requirements", None)
    due = getattr(requirements, "currently_due", None) or []
    capabilities = getattr(account, "capabilities", None)
    return ConnectedAccount(
        id=account.id,
        charges_enabled=bool(getattr(account, "charges_enabled", False)),
        payouts_enabled=bool(getattr(account, "payouts_enabled", False)),
        details_submitted=bool(getattr(account, "details_submitted", False)),
        requirements_due=tuple(due),
        # https://docs.stripe.com/connect/account-capabilities: "active" once the
        # account can receive transfers ("inactive" or "pending" before).
        transfers_active=getattr(capabilities, "transfers", None) == "active",
    )


def transfer_of(transfer: stripe.Transfer) -> Transfer:
    return Transfer(
        id=transfer.id,
        amount_minor=transfer.amount,
        currency=transfer.currency.upper(),
        destination=id_of(transfer.destination),
        reversed_minor=getattr(transfer, "amount_reversed", 0) or 0,
    )


def reversal_of(reversal: stripe.TransferReversal) -> TransferReversal:
    return TransferReversal(
        id=reversal.id, transfer_id=id_of(reversal.transfer), amount_minor=reversal.amount
    )


def payout_of(payout: stripe.Payout, account_id: str) -> Payout:
    return Payout(
        id=payout.id,
        status=payout.status,
        amount_minor=payout.amount,
        currency=payout.currency.upper(),
        account=account_id,
        failure_message=optional_str(payout, "failure_message"),
        failure_code=optional_str(payout, "failure_code"),
        metadata=metadata_of(payout),
        arrival_on=arrival_on(getattr(payout, "arrival_date", None)),
        bank_last4=optional_str(getattr(payout, "destination", None), "last4"),
    )


def metadata_of(obj: stripe.StripeObject) -> dict[str, str]:
    metadata = getattr(obj, "metadata", None)
    if metadata is None:
        return {}
    values = metadata.to_dict() if isinstance(metadata, stripe.StripeObject) else dict(metadata)
    return {str(key): str(value) for key, value in values.items()}


def metadata_has(obj: stripe.StripeObject, wanted: Mapping[str, str]) -> bool:
    found = metadata_of(obj)
    return all(found.get(key) == value for key, value in wanted.items())


def processor_event_of(event: stripe.Event, account: str = "") -> ProcessorEvent:
    # Plain JSON-shaped dicts (no StripeObject, no Decimal) for storage and handlers.
    raw = event.to_dict(for_json=True)
    data = raw.get("data") or {}
    return ProcessorEvent(
        id=event.id,
        type=event.type,
        created=datetime_of(event.created),
        livemode=event.livemode,
        data=data.get("object") or {},
        # Present only on events of connected accounts (the Connect endpoint).
        account=str(raw.get("account") or account),
        previous_attributes=data.get("previous_attributes") or {},
    )


# --- Small conversions -------------------------------------------------------------------


def datetime_of(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def optional_str(obj: object, field: str) -> str:
    """A string field that Stripe may send as null or leave out of the object."""
    # StripeObject raises AttributeError for a field missing from the response.
    value = getattr(obj, field, None)
    return value if isinstance(value, str) else ""
