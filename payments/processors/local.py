"""The ``local`` processor: Stripe Connect in test mode, simulated in our database.

It needs no keys and no network. Payments are confirmed with Stripe's test
card numbers:

=================== ==========================================================
4242 4242 4242 4242 succeeds
4000 0000 0000 0002 is declined ("Your card was declined.")
4000 0025 0000 3155 needs an extra confirmation step, then succeeds
4000 0000 0000 0259 succeeds, and is disputed a moment later
=================== ==========================================================

or by bank debit (SEPA Direct Debit-like), with Stripe's SEPA test IBANs. A
debit is *processing* at once (``payment_intent.processing``) and settles
``PAYMENTS_LOCAL_DEBIT_DAYS`` simulated days (``PAYMENTS_LOCAL_DAY_SECONDS``
each) later, when ``local_debits_settle`` (Celery beat, every minute) finds it
due:

======================== =====================================================
AT61 1904 3002 3457 3201 succeeds (``payment_intent.succeeded``)
AT86 1904 3002 3547 3202 fails ("insufficient funds"; ``payment_failed``)
AT59 1904 3002 3547 3203 succeeds, and is disputed a moment later
======================== =====================================================

A processing debit cannot be cancelled (as Stripe refuses it). Any other IBAN
is refused, like a card that is not a test card.

Every state change emits an event that is signed like Stripe's and delivered
asynchronously (a Celery task after the commit) to the same webhook service
the HTTP endpoint uses, so local payments run the production code path.

``PAYMENTS_LOCAL_FAULTS`` makes operations fail for fault tests: a mapping
from an operation name to ``"timeout_before"`` (nothing happens, then a
timeout), ``"timeout_after"`` (the work is done, then a timeout, like a lost
response) or ``"unavailable"``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model, Sum
from django.utils import timezone

from marketplace.kernel.money import percentage
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.models import WebhookEvent
from payments.models.local import (
    LocalAccount,
    LocalEvent,
    LocalPaymentIntent,
    LocalPayout,
    LocalRefund,
    LocalTransfer,
    LocalTransferReversal,
    local_id,
)
from payments.processors.base import (
    BalanceTransaction,
    CardDeclined,
    ConnectedAccount,
    InvalidProcessorRequest,
    OnboardingLink,
    Payment,
    PaymentStatus,
    Payout,
    ProcessorEvent,
    RefundResult,
    TemporaryProcessorError,
    Transfer,
    TransferReversal,
    WebhookSignatureError,
)

SIGNATURE_HEADER = "Local-Signature"
# Every connected account's bank account is Stripe's test account 000123456789, and a
# bank payout arrives two days after it is made (Stripe's standard US timing).
LOCAL_BANK_LAST4 = "6789"
LOCAL_ARRIVAL_DAYS = 2
TOLERANCE_SECONDS = 300
# The ``next_action`` type of a payment waiting for its extra confirmation step.
LOCAL_AUTHENTICATE = "local_authenticate"

CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_REQUIRES_ACTION = "4000002500003155"
CARD_DISPUTED = "4000000000000259"
# Every test card and what it does, in words for the payment page (``payment_confirm``
# is what makes it so). A new card is added here and there.
TEST_CARD_OUTCOMES: dict[str, str] = {
    CARD_SUCCEEDS: "pays",
    CARD_DECLINED: "is declined",
    CARD_REQUIRES_ACTION: "asks for an extra confirmation, then pays",
    CARD_DISPUTED: "pays, then the customer disputes the payment",
}
TEST_CARDS = tuple(TEST_CARD_OUTCOMES)

# The local processor's name for a bank debit (Stripe's are "sepa_debit", "us_bank_account").
BANK_DEBIT = "bank_debit"
IBAN_SUCCEEDS = "AT611904300234573201"
IBAN_FAILS = "AT861904300235473202"
IBAN_DISPUTED = "AT591904300235473203"
# Every test IBAN and what it does, in words for the payment page.
TEST_IBAN_OUTCOMES: dict[str, str] = {
    IBAN_SUCCEEDS: "is processing, then pays after the debit days",
    IBAN_FAILS: "is processing, then fails after the debit days (the order is cancelled)",
    IBAN_DISPUTED: "is processing, pays, then the customer disputes the debit",
}
TEST_IBANS = tuple(TEST_IBAN_OUTCOMES)
# A payment in one of these states is not confirmed again: it is answered as it is.
CONFIRMED = (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.PROCESSING)
DEBIT_FAILURE_MESSAGE = "The bank debit failed: the account has insufficient funds."

_M = TypeVar("_M", bound=Model)


def webhook_secret() -> str:
    """The local endpoint's signing secret, derived from SECRET_KEY."""
    return hmac.new(settings.SECRET_KEY.encode(), b"local-webhooks", hashlib.sha256).hexdigest()


def sign(payload: bytes, *, timestamp: int | None = None, secret: str | None = None) -> str:
    """A signature header value in Stripe's scheme: ``t=<unix time>,v1=<hex HMAC-SHA256>``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new((secret or webhook_secret()).encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def processing_fee(amount_minor: int) -> int:
    """What the simulated processor keeps of a payment: 2.9% + 30 minor units."""
    return min(amount_minor, percentage(amount_minor, 290) + 30)


class LocalProcessor:
    name = "local"

    # --- helpers -----------------------------------------------------------------

    def _fault(self, operation: str, when: str) -> None:
        fault = settings.PAYMENTS_LOCAL_FAULTS.get(operation)
        if fault == "balance_insufficient" and when == "before":
            raise InvalidProcessorRequest(
                "Insufficient available balance (simulated).", code="balance_insufficient"
            )
        if fault == "unavailable" and when == "before":
            raise TemporaryProcessorError("The local processor is unavailable (simulated).")
        if fault == f"timeout_{when}":
            raise TemporaryProcessorError(f"The local processor timed out (simulated, {when}).")

    def _once(
        self, model: type[_M], idempotency_key: str, create: dict[str, Any]
    ) -> tuple[_M, bool]:
        """The object made for this idempotency key: the existing one, or a new one."""
        existing = model._default_manager.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                return model._default_manager.create(
                    idempotency_key=idempotency_key, **create
                ), True
        except IntegrityError:
            return model._default_manager.get(idempotency_key=idempotency_key), False

    def _create_once(
        self, model: type[_M], idempotency_key: str, create: dict[str, Any]
    ) -> tuple[_M, bool]:
        """``_once`` for the operations a payout makes (transfer, payout): a new key is
        the common case, so it is inserted at once (one statement) and a key that exists
        meets the unique index, whose answer is the existing object. Outside a
        transaction a failed INSERT leaves nothing to roll back, so no savepoint."""
        manager = model._default_manager
        try:
            if not transaction.get_connection().in_atomic_block:
                return manager.create(idempotency_key=idempotency_key, **create), True
            with transaction.atomic():
                return manager.create(idempotency_key=idempotency_key, **create), True
        except IntegrityError:
            return manager.get(idempotency_key=idempotency_key), False

    def _emit(self, type_: str, data: Mapping[str, Any], account: str = "") -> LocalEvent:
        event = LocalEvent.objects.create(
            id=local_id("evt"), type=type_, account=account, data=dict(data)
        )
        enqueue_on_commit("payments.tasks.local_event_deliver", event.id)
        return event

    def _emit_again(self, type_: str, data: Mapping[str, Any], account: str = "") -> None:
        """On a replayed request: the object's event, emitted if a crash between writing
        the object and emitting its event lost it, and delivered again if it never
        reached our webhook endpoint (Stripe retries a delivery until it is received)."""

        event = LocalEvent.objects.filter(type=type_, data__id=data["id"]).first()
        if event is None:
            self._emit(type_, data, account)
        elif not WebhookEvent.objects.filter(processor=self.name, event_id=event.id).exists():
            enqueue_on_commit("payments.tasks.local_event_deliver", event.id)

    @staticmethod
    def _payment(intent: LocalPaymentIntent) -> Payment:
        return Payment(
            id=intent.id,
            status=intent.status,
            amount_minor=intent.amount_minor,
            currency=intent.currency,
            client_secret=intent.client_secret,
            charge_id=intent.charge_id,
            failure_message=intent.failure_message,
            fee_minor=intent.fee_minor,
            # The "requires action" card's extra step (3-D Secure), done with
            # ``payment_authenticate``.
            next_action=(
                {"type": LOCAL_AUTHENTICATE}
                if intent.status == PaymentStatus.REQUIRES_ACTION
                else None
            ),
        )

    @staticmethod
    def _payment_data(intent: LocalPaymentIntent) -> dict[str, Any]:
        return {
            "object": "payment_intent",
            "id": intent.id,
            "status": intent.status,
            "amount": intent.amount_minor,
            "currency": intent.currency.lower(),
            "metadata": intent.metadata,
            "latest_charge": intent.charge_id or None,
            "payment_method_types": [intent.payment_method_type or "card"],
            "last_payment_error": (
                {
                    "message": intent.failure_message,
                    "payment_method": {"type": intent.payment_method_type or "card"},
                }
                if intent.failure_message
                else None
            ),
        }

    @staticmethod
    def _account(account: LocalAccount) -> ConnectedAccount:
        done = account.details_submitted
        return ConnectedAccount(
            id=account.id,
            # Like Stripe's transfers-only accounts: no card payments of their own.
            charges_enabled=False,
            payouts_enabled=done,
            details_submitted=done,
            requirements_due=() if done else ("individual.verification", "external_account"),
            transfers_active=done,
        )

    # --- sellers -----------------------------------------------------------------

    def account_create(self, *, email: str, country: str, idempotency_key: str) -> ConnectedAccount:
        self._fault("account_create", "before")
        account, _ = self._once(
            LocalAccount,
            idempotency_key,
            {"id": local_id("acct"), "email": email, "country": country},
        )
        self._fault("account_create", "after")
        return self._account(account)

    def account_onboarding_link(
        self, *, account_id: str, refresh_url: str, return_url: str
    ) -> OnboardingLink:
        from django.urls import reverse
        from django.utils.http import urlencode

        if not LocalAccount.objects.filter(pk=account_id).exists():
            raise InvalidProcessorRequest(f"No such account: {account_id}")
        path = reverse("payments:local_onboarding", args=[account_id])
        return OnboardingLink(url=f"{path}?{urlencode({'return_url': return_url})}")

    def account_get(self, *, account_id: str) -> ConnectedAccount:
        account = LocalAccount.objects.filter(pk=account_id).first()
        if account is None:
            raise InvalidProcessorRequest(f"No such account: {account_id}")
        return self._account(account)

    @transaction.atomic
    def account_complete_onboarding(self, *, account_id: str) -> ConnectedAccount:
        """What the seller does on the local onboarding page (Stripe's hosted form)."""
        account = LocalAccount.objects.select_for_update().filter(pk=account_id).first()
        if account is None:
            raise InvalidProcessorRequest(f"No such account: {account_id}")
        if not account.details_submitted:
            account.details_submitted = True
            account.save(update_fields=["details_submitted"])
            self._emit("account.updated", {"object": "account", "id": account.id}, account.id)
        return self._account(account)

    # --- payments ------------------------------------------------------------------

    def payment_create(
        self,
        *,
        amount_minor: int,
        currency: str,
        transfer_group: str,
        customer_email: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payment:
        self._fault("payment_create", "before")
        if amount_minor <= 0:
            raise InvalidProcessorRequest("Amount must be positive.")
        intent, _ = self._once(
            LocalPaymentIntent,
            idempotency_key,
            {
                "id": local_id("pi"),
                "amount_minor": amount_minor,
                "currency": currency,
                "status": PaymentStatus.REQUIRES_PAYMENT_METHOD,
                "client_secret": f"local_secret_{secrets.token_hex(12)}",
                "transfer_group": transfer_group,
                "customer_email": customer_email,
                "metadata": dict(metadata),
            },
        )
        self._fault("payment_create", "after")
        return self._payment(intent)

    def payment_get(self, *, payment_id: str) -> Payment:
        intent = LocalPaymentIntent.objects.filter(pk=payment_id).first()
        if intent is None:
            raise InvalidProcessorRequest(f"No such payment: {payment_id}")
        return self._payment(intent)

    def payment_method_type_get(self, *, payment_id: str) -> str:
        """How the customer paid: ``card`` or ``bank_debit``; blank before confirming."""
        intent = LocalPaymentIntent.objects.filter(pk=payment_id).first()
        if intent is None:
            raise InvalidProcessorRequest(f"No such payment: {payment_id}")
        return intent.payment_method_type

    @staticmethod
    def _intent_to_confirm(payment_id: str) -> LocalPaymentIntent:
        """The payment, under its lock, for a confirmation."""
        intent = LocalPaymentIntent.objects.select_for_update().filter(pk=payment_id).first()
        if intent is None:
            raise InvalidProcessorRequest(f"No such payment: {payment_id}")
        return intent

    def payment_confirm(self, *, payment_id: str, card_number: str) -> Payment:
        """What Stripe.js does in the customer's browser: pay with a (test) card.

        A decline is recorded (and its event emitted) before ``CardDeclined``
        is raised, as a real processor keeps the failed try.
        """
        self._fault("payment_confirm", "before")
        number = "".join(ch for ch in card_number if ch.isdigit())
        with transaction.atomic():
            intent = self._intent_to_confirm(payment_id)
            if intent.status in CONFIRMED:
                return self._payment(intent)
            if number not in TEST_CARDS:
                raise CardDeclined(
                    "Use one of the local processor's test cards, such as 4242 4242 4242 4242.",
                    code="invalid_number",
                )
            intent.card_last4 = number[-4:]
            intent.payment_method_type = "card"
            if number == CARD_DECLINED:
                self._decline(intent, "Your card was declined.")
            elif number == CARD_REQUIRES_ACTION:
                intent.status = PaymentStatus.REQUIRES_ACTION
                intent.failure_message = ""
                intent.save()
            else:
                intent.dispute_on_success = number == CARD_DISPUTED
                self._succeed(intent)
        if intent.failure_message:
            raise CardDeclined(intent.failure_message, code="card_declined")
        self._fault("payment_confirm", "after")
        return self._payment(intent)

    def payment_confirm_bank_debit(self, *, payment_id: str, iban: str) -> Payment:
        """What Stripe.js does with a SEPA mandate: pay by debiting a (test) bank account.

        The payment is ``processing`` at once (``payment_intent.processing``) and settles
        when due (``debit_settle``). An IBAN that is not a test one is refused with
        ``CardDeclined`` (code ``invalid_iban``) and nothing changes. Confirming a payment
        that is processing, succeeded or cancelled answers it as it is.
        """
        self._fault("payment_confirm", "before")
        number = normalized_iban(iban)
        with transaction.atomic():
            intent = self._intent_to_confirm(payment_id)
            if intent.status in CONFIRMED:
                return self._payment(intent)
            if number not in TEST_IBANS:
                raise CardDeclined(
                    "Use one of the local processor's test IBANs, such as "
                    "AT61 1904 3002 3457 3201.",
                    code="invalid_iban",
                )
            delay = settings.PAYMENTS_LOCAL_DEBIT_DAYS * settings.PAYMENTS_LOCAL_DAY_SECONDS
            intent.status = PaymentStatus.PROCESSING
            intent.failure_message = ""
            intent.payment_method_type = BANK_DEBIT
            intent.bank_last4 = number[-4:]
            intent.settles_at = timezone.now() + timedelta(seconds=delay)
            intent.debit_fails = number == IBAN_FAILS
            intent.dispute_on_success = number == IBAN_DISPUTED
            intent.save()
            self._emit("payment_intent.processing", self._payment_data(intent))
        self._fault("payment_confirm", "after")
        return self._payment(intent)

    def debit_settle(self, *, payment_id: str, now: datetime | None = None) -> bool:
        """What the bank does days later: a processing debit that is due succeeds (a
        charge and its fee, ``payment_intent.succeeded``) or fails (the payment goes back
        to ``requires_payment_method`` with a failure message,
        ``payment_intent.payment_failed``). Under the payment's lock; a debit that is not
        processing or not due yet is left as it is, so settling twice changes nothing.
        Returns whether it settled now."""
        now = now or timezone.now()
        with transaction.atomic():
            intent = LocalPaymentIntent.objects.select_for_update().filter(pk=payment_id).first()
            if (
                intent is None
                or intent.status != PaymentStatus.PROCESSING
                or intent.settles_at is None
                or intent.settles_at > now
            ):
                return False
            if intent.debit_fails:
                self._decline(intent, DEBIT_FAILURE_MESSAGE)
            else:
                self._succeed(intent)
        return True

    def payment_authenticate(self, *, payment_id: str, approve: bool) -> Payment:
        """The extra confirmation step (3-D Secure) of the ``requires action`` card."""
        with transaction.atomic():
            intent = LocalPaymentIntent.objects.select_for_update().filter(pk=payment_id).first()
            if intent is None or intent.status != PaymentStatus.REQUIRES_ACTION:
                raise InvalidProcessorRequest("This payment is not waiting for a confirmation.")
            if approve:
                self._succeed(intent)
            else:
                self._decline(intent, "The card's confirmation was refused.")
        if intent.failure_message:
            raise CardDeclined(intent.failure_message, code="payment_intent_authentication_failure")
        return self._payment(intent)

    def _decline(self, intent: LocalPaymentIntent, message: str) -> None:
        intent.status = PaymentStatus.REQUIRES_PAYMENT_METHOD
        intent.failure_message = message
        intent.save()
        self._emit("payment_intent.payment_failed", self._payment_data(intent))

    def _succeed(self, intent: LocalPaymentIntent) -> None:
        intent.status = PaymentStatus.SUCCEEDED
        intent.failure_message = ""
        intent.charge_id = local_id("ch")
        intent.fee_minor = processing_fee(intent.amount_minor)
        intent.save()
        self._emit("payment_intent.succeeded", self._payment_data(intent))
        if intent.dispute_on_success:
            self._emit(
                "charge.dispute.created",
                {
                    "object": "dispute",
                    "id": local_id("dp"),
                    "charge": intent.charge_id,
                    "payment_intent": intent.id,
                    "amount": intent.amount_minor,
                    "currency": intent.currency.lower(),
                    "status": "needs_response",
                    "reason": "fraudulent",
                },
            )

    @staticmethod
    def _disputed(intent: LocalPaymentIntent) -> bool:
        """The payment has a dispute that is open or was lost."""
        opened = LocalEvent.objects.filter(
            type="charge.dispute.created", data__payment_intent=intent.id
        ).values_list("data__id", flat=True)
        won = set(
            LocalEvent.objects.filter(
                type="charge.dispute.closed", data__id__in=list(opened), data__status="won"
            ).values_list("data__id", flat=True)
        )
        return any(dispute_id not in won for dispute_id in opened)

    @transaction.atomic
    def dispute_close(self, *, dispute_id: str, won: bool) -> None:
        """Decide a simulated dispute (what the card network does in real life)."""
        opened = LocalEvent.objects.filter(
            type="charge.dispute.created", data__id=dispute_id
        ).first()
        if opened is None:
            raise InvalidProcessorRequest(f"No such dispute: {dispute_id}")
        if not LocalEvent.objects.filter(
            type="charge.dispute.closed", data__id=dispute_id
        ).exists():
            self._emit("charge.dispute.closed", {**opened.data, "status": "won" if won else "lost"})

    @transaction.atomic
    def payment_cancel(self, *, payment_id: str, idempotency_key: str) -> Payment:
        intent = LocalPaymentIntent.objects.select_for_update().filter(pk=payment_id).first()
        if intent is None:
            raise InvalidProcessorRequest(f"No such payment: {payment_id}")
        if intent.status == PaymentStatus.SUCCEEDED:
            raise InvalidProcessorRequest("A succeeded payment cannot be canceled; refund it.")
        if intent.status == PaymentStatus.PROCESSING:
            # As Stripe: a processing payment (a bank debit under way) cannot be canceled.
            raise InvalidProcessorRequest(
                "You cannot cancel this PaymentIntent because it has a status of processing.",
                code="payment_intent_unexpected_state",
            )
        if intent.status != PaymentStatus.CANCELED:
            intent.status = PaymentStatus.CANCELED
            intent.save()
            self._emit("payment_intent.canceled", self._payment_data(intent))
        return self._payment(intent)

    def refund_create(
        self,
        *,
        payment_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        self._fault("refund_create", "before")
        with transaction.atomic():
            intent = LocalPaymentIntent.objects.select_for_update().filter(pk=payment_id).first()
            if intent is None or intent.status != PaymentStatus.SUCCEEDED:
                raise InvalidProcessorRequest("Only a succeeded payment can be refunded.")
            if self._disputed(intent):
                # As Stripe: a charge with an open or lost dispute takes no refund.
                raise InvalidProcessorRequest(
                    f"Charge {intent.charge_id} has been charged back.", code="charge_disputed"
                )
            refund, created = self._once(
                LocalRefund,
                idempotency_key,
                {
                    "id": local_id("re"),
                    "payment_intent": intent,
                    "amount_minor": amount_minor,
                    "status": "pending",
                    "metadata": dict(metadata),
                },
            )
            if created:
                already = sum(
                    r.amount_minor
                    for r in LocalRefund.objects.filter(payment_intent=intent, status="succeeded")
                )
                fits = already + amount_minor <= intent.amount_minor
                refund.status = "succeeded" if fits else "failed"
                refund.save(update_fields=["status"])
                self._emit("refund.updated", self._refund_data(refund))
        # After the commit: the refund is done even if the answer is lost.
        self._fault("refund_create", "after")
        return RefundResult(
            id=refund.id,
            status=refund.status,
            amount_minor=refund.amount_minor,
            currency=intent.currency,
            failure_reason="" if refund.status == "succeeded" else "amount_too_large",
        )

    @staticmethod
    def _refund_data(refund: LocalRefund) -> dict[str, Any]:
        return {
            "object": "refund",
            "id": refund.id,
            "status": refund.status,
            "amount": refund.amount_minor,
            "payment_intent": refund.payment_intent_id,
            "metadata": refund.metadata,
        }

    # --- money to sellers ----------------------------------------------------------

    def transfer_create(
        self,
        *,
        amount_minor: int,
        currency: str,
        destination: str,
        transfer_group: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
        source_charge: str | None = None,
    ) -> Transfer:
        self._fault("transfer_create", "before")
        if not LocalAccount.objects.filter(pk=destination, details_submitted=True).exists():
            raise InvalidProcessorRequest(f"{destination} cannot receive transfers yet.")
        transfer, _ = self._create_once(
            LocalTransfer,
            idempotency_key,
            {
                "id": local_id("tr"),
                "amount_minor": amount_minor,
                "currency": currency,
                "destination": destination,
                "transfer_group": transfer_group,
                "source_charge": source_charge or "",
                "metadata": dict(metadata),
            },
        )
        self._fault("transfer_create", "after")
        return self._transfer(transfer)

    @staticmethod
    def _transfer(transfer: LocalTransfer) -> Transfer:
        return Transfer(
            id=transfer.id,
            amount_minor=transfer.amount_minor,
            currency=transfer.currency,
            destination=transfer.destination,
            reversed_minor=transfer.reversed_minor,
        )

    def transfer_find(self, *, transfer_group: str, destination: str) -> Transfer | None:
        transfer = (
            LocalTransfer.objects.filter(transfer_group=transfer_group, destination=destination)
            .order_by("created_at")
            .first()
        )
        return None if transfer is None else self._transfer(transfer)

    @transaction.atomic
    def transfer_reverse(
        self,
        *,
        transfer_id: str,
        amount_minor: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> TransferReversal:
        self._fault("transfer_reverse", "before")
        transfer = LocalTransfer.objects.select_for_update().filter(pk=transfer_id).first()
        if transfer is None:
            raise InvalidProcessorRequest(f"No such transfer: {transfer_id}")
        existing = LocalTransferReversal.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            if transfer.reversed_minor + amount_minor > transfer.amount_minor:
                raise InvalidProcessorRequest("That is more than is left of the transfer.")
            # As Stripe: a transfer is reversed only from what the account still holds.
            held = self.account_balance(account_id=transfer.destination, currency=transfer.currency)
            if amount_minor > held:
                raise InvalidProcessorRequest(
                    "The connected account's balance is too low for this reversal.",
                    code="balance_insufficient",
                )
        reversal, created = self._once(
            LocalTransferReversal,
            idempotency_key,
            {
                "id": local_id("trr"),
                "transfer": transfer,
                "amount_minor": amount_minor,
                "metadata": dict(metadata),
            },
        )
        if created:
            transfer.reversed_minor += amount_minor
            transfer.save(update_fields=["reversed_minor"])
        self._fault("transfer_reverse", "after")
        return TransferReversal(
            id=reversal.id, transfer_id=transfer.id, amount_minor=reversal.amount_minor
        )

    def transfer_reversal_find(
        self, *, transfer_id: str, metadata: Mapping[str, str]
    ) -> TransferReversal | None:
        for reversal in LocalTransferReversal.objects.filter(transfer_id=transfer_id):
            if all(reversal.metadata.get(k) == v for k, v in metadata.items()):
                return TransferReversal(
                    id=reversal.id, transfer_id=transfer_id, amount_minor=reversal.amount_minor
                )
        return None

    def account_balance(self, *, account_id: str, currency: str) -> int:
        """What the account holds: transfers in, less reversals and payouts not failed."""
        received = LocalTransfer.objects.filter(
            destination=account_id, currency=currency
        ).aggregate(total=Sum(F("amount_minor") - F("reversed_minor")))["total"]
        paid_out = (
            LocalPayout.objects.filter(account=account_id, currency=currency)
            .exclude(status="failed")
            .aggregate(total=Sum("amount_minor"))["total"]
        )
        return int(received or 0) - int(paid_out or 0)

    def payout_create(
        self,
        *,
        account_id: str,
        amount_minor: int,
        currency: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> Payout:
        self._fault("payout_create", "before")
        if settings.PAYMENTS_LOCAL_FAULTS.get("payout_create") == "refused":
            raise InvalidProcessorRequest(
                "The bank account was closed (simulated).", code="account_closed"
            )
        made, held = self._payout_made_and_held(idempotency_key, account_id, currency)
        if not made and amount_minor > held:
            raise InvalidProcessorRequest(
                "The connected account's balance is too low for this payout.",
                code="balance_insufficient",
            )
        payout, created = self._create_once(
            LocalPayout,
            idempotency_key,
            {
                "id": local_id("po"),
                "account": account_id,
                "amount_minor": amount_minor,
                "currency": currency,
                "status": "paid",
                "metadata": dict(metadata),
            },
        )
        event = self._payout_data(payout)
        if created:
            self._emit("payout.paid", event, account_id)
        else:
            self._emit_again("payout.paid", event, account_id)
        self._fault("payout_create", "after")
        # As Stripe answers a new payout: on its way; its event says when it is paid.
        return (
            replace(self._payout(payout), status="in_transit") if created else self._payout(payout)
        )

    @staticmethod
    def _payout_made_and_held(key: str, account_id: str, currency: str) -> tuple[bool, int]:
        """Whether a payout was made with this idempotency key, and what the account holds
        (``account_balance``), read in one statement."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM payments_localpayout WHERE idempotency_key = %s),"
                " (SELECT COALESCE(SUM(amount_minor - reversed_minor), 0)"
                "   FROM payments_localtransfer WHERE destination = %s AND currency = %s),"
                " (SELECT COALESCE(SUM(amount_minor), 0) FROM payments_localpayout"
                "   WHERE account = %s AND currency = %s AND status <> 'failed')",
                [key, account_id, currency, account_id, currency],
            )
            made, received, paid_out = cursor.fetchone()
        return bool(made), int(received) - int(paid_out)

    @staticmethod
    def _payout_data(payout: LocalPayout) -> dict[str, Any]:
        arrival = datetime.combine(_arrival_on(payout), datetime.min.time(), tzinfo=UTC)
        return {
            "object": "payout",
            "id": payout.id,
            "status": payout.status,
            "amount": payout.amount_minor,
            "currency": payout.currency.lower(),
            "arrival_date": int(arrival.timestamp()),
            "metadata": dict(payout.metadata),
        }

    @staticmethod
    def _payout(payout: LocalPayout) -> Payout:
        return Payout(
            id=payout.id,
            status=payout.status,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            account=payout.account,
            metadata=dict(payout.metadata),
            arrival_on=_arrival_on(payout),
            bank_last4=LOCAL_BANK_LAST4,
        )

    def payout_find(
        self, *, account_id: str, metadata: Mapping[str, str], since: datetime
    ) -> Payout | None:
        for payout in LocalPayout.objects.filter(account=account_id, created_at__gte=since):
            if all(payout.metadata.get(k) == v for k, v in metadata.items()):
                # As a replayed request does: the event a crash lost is sent (again).
                self._emit_again(f"payout.{payout.status}", self._payout_data(payout), account_id)
                return self._payout(payout)
        return None

    @transaction.atomic
    def payout_return(
        self, *, payout_id: str, message: str = "The bank returned the payout."
    ) -> None:
        """What a bank does days later (Stripe: a paid payout can still fail): the
        payout fails and its money goes back to the connected account."""
        payout = LocalPayout.objects.select_for_update().get(pk=payout_id)
        if payout.status == "failed":
            return
        payout.status = "failed"
        payout.save(update_fields=["status"])
        data = {
            **self._payout_data(payout),
            "failure_message": message,
            "failure_code": "account_closed",
        }
        self._emit("payout.failed", data, payout.account)

    # --- events --------------------------------------------------------------------

    @staticmethod
    def event_payload(event: LocalEvent) -> bytes:
        body = {
            "id": event.id,
            "object": "event",
            "type": event.type,
            "created": int(event.created_at.timestamp()),
            "livemode": False,
            "account": event.account or None,
            "data": {"object": event.data},
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def webhook_parse(
        self, *, payload: bytes, headers: Mapping[str, str], endpoint: str = "platform"
    ) -> ProcessorEvent:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError as exc:
            raise WebhookSignatureError("Missing or malformed signature.") from exc
        expected = sign(payload, timestamp=timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise WebhookSignatureError("The signature does not match the payload.")
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise WebhookSignatureError("The signature is too old.")
        try:
            body = json.loads(payload)
            return ProcessorEvent(
                id=str(body["id"]),
                type=str(body["type"]),
                created=datetime.fromtimestamp(int(body["created"]), tz=UTC),
                livemode=bool(body.get("livemode", False)),
                data=dict(body["data"]["object"]),
                account=str(body.get("account") or ""),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookSignatureError("The payload is not an event.") from exc

    def events_list(
        self, *, since: datetime, account: str = "", types: Sequence[str] = ()
    ) -> Sequence[ProcessorEvent]:
        """As Stripe lists them: the platform's events, or one connected account's."""
        events = LocalEvent.objects.filter(created_at__gte=since, account=account)
        if types:
            events = events.filter(type__in=types)
        return [
            self.webhook_parse(
                payload=(payload := self.event_payload(event)),
                headers={SIGNATURE_HEADER: sign(payload)},
            )
            for event in events
        ]

    def balance_transactions_list(
        self, *, since: datetime, until: datetime
    ) -> Sequence[BalanceTransaction]:
        """What moved the platform's balance in ``[since, until)``, as Stripe reports it:
        charges (with their fee), refunds, transfers to connected accounts, transfer
        reversals, and dispute withdrawals and reinstatements."""

        def txn(
            id: str, type: str, amount: int, currency: str, source: str, at: datetime, **more: Any
        ) -> BalanceTransaction:
            fee = int(more.pop("fee", 0))
            return BalanceTransaction(
                id=f"txn_{id}",
                type=type,
                amount_minor=amount,
                fee_minor=fee,
                net_minor=amount - fee,
                currency=currency.upper(),
                source=source,
                created=at,
                **more,
            )

        window = {"created_at__gte": since, "created_at__lt": until}
        found = [
            txn(
                intent.charge_id,
                "charge",
                intent.amount_minor,
                intent.currency,
                intent.charge_id,
                intent.updated_at,
                fee=intent.fee_minor or 0,
                payment_intent=intent.id,
            )
            for intent in LocalPaymentIntent.objects.filter(
                status=PaymentStatus.SUCCEEDED, updated_at__gte=since, updated_at__lt=until
            )
        ]
        found += [
            txn(r.id, "refund", -r.amount_minor, r.payment_intent.currency, r.id, r.created_at)
            for r in LocalRefund.objects.filter(status="succeeded", **window).select_related(
                "payment_intent"
            )
        ]
        found += [
            txn(t.id, "transfer", -t.amount_minor, t.currency, t.id, t.created_at)
            for t in LocalTransfer.objects.filter(**window)
        ]
        found += [
            txn(r.id, "transfer_refund", r.amount_minor, r.transfer.currency, r.id, r.created_at)
            for r in LocalTransferReversal.objects.filter(**window).select_related("transfer")
        ]
        for event in LocalEvent.objects.filter(
            type__in=("charge.dispute.created", "charge.dispute.closed"), **window
        ):
            data = event.data
            if event.type == "charge.dispute.closed" and data.get("status") != "won":
                continue
            sign = -1 if event.type == "charge.dispute.created" else 1
            found.append(
                txn(
                    f"{data['id']}_{'withdrawn' if sign < 0 else 'reinstated'}",
                    "adjustment",
                    sign * int(data["amount"]),
                    str(data["currency"]),
                    str(data["id"]),
                    event.created_at,
                )
            )
        return sorted(found, key=lambda t: (t.created, t.id))


def normalized_iban(iban: str) -> str:
    """An IBAN as written on paper (spaces, lower case) in its electronic form."""
    return "".join(ch for ch in iban if not ch.isspace()).upper()


def local_debits_settle(*, now: datetime | None = None) -> int:
    """Settle every local bank debit that is due (``settles_at`` passed), one at a time
    under its payment's lock (``LocalProcessor.debit_settle``): a debit settles once,
    however often this runs or however many run at once. Celery beat runs it every
    minute. Returns how many settled now."""
    now = now or timezone.now()
    processor = LocalProcessor()
    due = LocalPaymentIntent.objects.filter(
        status=PaymentStatus.PROCESSING, settles_at__lte=now
    ).values_list("pk", flat=True)
    return sum(processor.debit_settle(payment_id=pk, now=now) for pk in list(due))


def _arrival_on(payout: LocalPayout) -> date:
    return (payout.created_at or datetime.now(UTC)).astimezone(UTC).date() + timedelta(
        days=LOCAL_ARRIVAL_DAYS
    )
