"""Payouts: when and how much each seller is paid, and each payment made."""

from __future__ import annotations

import calendar
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.db.models import F, Q

from marketplace.kernel.currencies import exponent


def default_hold_days() -> int:
    return int(settings.PAYMENTS_HOLD_DAYS)


def default_release_on_delivery() -> bool:
    return bool(settings.PAYMENTS_RELEASE_ON_DELIVERY)


def _amounts_by_currency_errors(value: object) -> list[str]:
    if not isinstance(value, dict):
        return ['Give amounts per currency in minor units, e.g. {"USD": 1000}.']
    errors = []
    for currency, amount in value.items():
        try:
            exponent(str(currency))
        except (KeyError, ValueError):
            errors.append(f"{currency} is not a currency.")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            errors.append(f"{currency}: give a whole number of minor units, 0 or more.")
    return errors


class PayoutMethod(models.TextChoices):
    PROCESSOR = "processor", "Through the payment processor"
    MANUAL = "manual", "Bank transfer by an operator"


class PayoutPolicy(models.Model):
    """The platform default (no seller) or one seller's override.

    A seller with an override follows all of it; every other seller follows
    the default: the row without a seller, or until an operator saves one, the
    settings ``PAYMENTS_HOLD_DAYS`` and ``PAYMENTS_RELEASE_ON_DELIVERY``.
    """

    Method = PayoutMethod

    class Schedule(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"
        MANUAL = "manual", "Manual only"

    seller = models.OneToOneField(
        "accounts.Seller",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="payout_policy",
        help_text="Empty for the platform default.",
    )
    schedule = models.CharField(max_length=10, choices=Schedule.choices, default=Schedule.DAILY)
    weekday = models.PositiveSmallIntegerField(
        default=0, help_text="For weekly payouts: 0 is Monday, 6 Sunday."
    )
    month_day = models.PositiveSmallIntegerField(
        default=1, help_text="For monthly payouts: the day of the month (1-28)."
    )
    minimums = models.JSONField(
        default=dict,
        blank=True,
        help_text='Smallest payout per currency, in minor units, e.g. {"USD": 1000}. '
        "Less rolls over to the next payout.",
    )
    approval_thresholds = models.JSONField(
        default=dict,
        blank=True,
        help_text="Payouts above this amount per currency wait for an operator, "
        'e.g. {"USD": 500000}.',
    )
    method = models.CharField(
        max_length=10,
        choices=PayoutMethod.choices,
        default=PayoutMethod.PROCESSOR,
        help_text="Manual: an operator pays by bank transfer from the run's CSV, then marks paid.",
    )
    hold_days = models.PositiveSmallIntegerField(
        default=default_hold_days,
        help_text="Days a sale's earnings stay pending after payment before they are available.",
    )
    release_on_delivery = models.BooleanField(
        default=default_release_on_delivery,
        help_text="Release earnings when the order is delivered instead of after the hold days.",
    )
    reserve_bps = models.PositiveIntegerField(
        "rolling reserve (basis points)",
        default=0,
        help_text="Share of the earnings released in the reserve window kept back: 1000 = 10%.",
    )
    reserve_days = models.PositiveSmallIntegerField(
        default=90, help_text="The rolling reserve's window in days."
    )
    frozen = models.BooleanField(default=False, help_text="No payouts while frozen.")
    frozen_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name_plural = "payout policies"
        constraints = [
            models.UniqueConstraint(
                fields=["schedule"],
                condition=Q(seller__isnull=True),
                name="payments_payoutpolicy_one_default",
            ),
            models.CheckConstraint(
                condition=Q(weekday__lte=6, month_day__gte=1, month_day__lte=28),
                name="payments_payoutpolicy_valid_days",
            ),
            models.CheckConstraint(
                condition=Q(reserve_bps__lte=10_000), name="payments_payoutpolicy_reserve_max"
            ),
            models.CheckConstraint(
                condition=Q(frozen=False) | ~Q(frozen_reason=""),
                name="payments_payoutpolicy_frozen_has_reason",
            ),
        ]

    def __str__(self) -> str:
        owner = self.seller.display_name if self.seller_id and self.seller else "Platform default"
        return f"{owner}: {self.get_schedule_display()}"

    def clean(self) -> None:
        """Amounts per real currency in whole minor units; a freeze needs a reason."""
        from django.core.exceptions import ValidationError

        errors = {
            name: messages
            for name in ("minimums", "approval_thresholds")
            if (messages := _amounts_by_currency_errors(getattr(self, name)))
        }
        if self.frozen and not self.frozen_reason.strip():
            errors["frozen_reason"] = ["Say why the payouts are frozen."]
        if errors:
            raise ValidationError(errors)

    @property
    def schedule_text(self) -> str:
        """The schedule in words: "Daily", "Weekly on Friday", "Monthly on day 1"."""
        if self.schedule == self.Schedule.WEEKLY:
            return f"Weekly on {calendar.day_name[self.weekday]}"
        if self.schedule == self.Schedule.MONTHLY:
            return f"Monthly on day {self.month_day}"
        return str(self.get_schedule_display())

    @property
    def reserve_percent(self) -> Decimal:
        """The reserve as a percentage for people: 10, 12.5 (never 1E+1)."""
        percent = Decimal(self.reserve_bps) / 100
        if percent == percent.to_integral_value():
            return percent.quantize(Decimal(1))
        return percent.normalize()


class PayoutRun(models.Model):
    """One run of ``run_payouts``: when, who started it, and what it did."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        ADMIN = "admin", "Admin"
        API = "api", "API"
        COMMAND = "command", "Command line"

    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    holds_released = models.PositiveIntegerField(default=0)
    payouts_created = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True, help_text="Sellers not paid, and why.")
    chunks_total = models.PositiveIntegerField(
        default=0, help_text="How many chunks of sellers the run was split into."
    )
    chunks_done = models.PositiveIntegerField(
        default=0, help_text="How many chunks have made their payouts."
    )
    sends_scheduled = models.PositiveIntegerField(
        default=0,
        help_text="Processor sends queued so far: the next chunk's sends are paced after them.",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(chunks_done__lte=F("chunks_total")),
                name="payments_payoutrun_chunks_done_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"Payout run #{self.pk}"

    @property
    def progress_text(self) -> str:
        """Progress for people: "3 / 10 chunks"."""
        return f"{self.chunks_done} / {self.chunks_total} chunks"


class PayoutRunChunk(models.Model):
    """One chunk of a payout run: the sellers with ids from ``first_seller_id`` to
    ``last_seller_id`` (empty: no upper bound), made into payouts in one transaction
    (``payments.payouts.runs``). ``done_at`` is set in that transaction: a chunk is
    done once, whatever is retried."""

    run = models.ForeignKey(PayoutRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_seller_id = models.BigIntegerField()
    last_seller_id = models.BigIntegerField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    payouts_created = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True, help_text="Sellers not paid, and why.")

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="payments_payoutrunchunk_once"),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.number} of payout run #{self.run_id}"


class Payout(models.Model):
    """One payment of a seller's available balance in one currency."""

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        HELD = "held", "Held by an operator"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        TRANSFERRED = "transferred", "In the seller's processor account"
        IN_TRANSIT = "in_transit", "In transit"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.AWAITING_APPROVAL, Status.HELD, Status.SCHEDULED)

    seller = models.ForeignKey("accounts.Seller", on_delete=models.PROTECT, related_name="payouts")
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    period = models.CharField(
        max_length=40, help_text="The schedule period this payout is for, e.g. 2026-11-29."
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.SCHEDULED, db_index=True
    )
    method = models.CharField(
        max_length=10, choices=PayoutMethod.choices, default=PayoutMethod.PROCESSOR
    )
    run = models.ForeignKey(
        PayoutRun, on_delete=models.PROTECT, null=True, blank=True, related_name="payouts"
    )
    processor = models.CharField(max_length=20, blank=True)
    processor_transfer_id = models.CharField(max_length=100, blank=True)
    processor_payout_id = models.CharField(max_length=100, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    bank_reference = models.CharField(
        max_length=100, blank=True, help_text="For a manual payout: the bank transfer's reference."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requires_approval = models.BooleanField(
        default=False, help_text="Above the approval threshold: a second operator must approve."
    )
    reserve_minor = models.BigIntegerField(
        default=0,
        help_text="What the seller's rolling reserve kept back of their available balance "
        "when this payout was made (paid in a later payout).",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    metadata = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="An integrator's own key-value pairs (payments/metadata.py has the limits).",
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="When the sender tries the processor again by itself; empty: at the next run.",
    )
    attempts_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the current round of attempts at the processor began: the "
        "attention window counts from it.",
    )
    attention_reason = models.CharField(
        max_length=255,
        blank=True,
        help_text="Why automatic sending stopped and an operator must look (empty: it did not).",
    )
    arrival_on = models.DateField(
        null=True,
        blank=True,
        help_text="When the money is due in the seller's bank: the processor's arrival date, "
        "or for a manual payout the day it was marked paid.",
    )
    bank_last4 = models.CharField(
        max_length=4, blank=True, help_text="The last four digits of the bank account paid."
    )
    clawed_back_minor = models.BigIntegerField(
        default=0,
        help_text="Taken back from its transfer for refunds and lost disputes "
        "(reserved while a reversal is under way); the bank payout pays the rest.",
    )

    audit_records = GenericRelation("payments.AuditRecord", related_query_name="payout")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["seller", "currency", "period"], name="payments_payout_once_per_period"
            ),
            models.CheckConstraint(
                condition=Q(clawed_back_minor__gte=0, clawed_back_minor__lte=F("amount_minor")),
                name="payments_payout_clawback_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0), name="payments_payout_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Payout #{self.pk} to {self.seller}"

    @property
    def idempotency_key(self) -> str:
        return f"payout-{self.pk}"

    @property
    def bank_amount_minor(self) -> int:
        """What its bank payout pays: its amount less what was clawed back from it."""
        return self.amount_minor - self.clawed_back_minor

    @property
    def transfer_group(self) -> str:
        """The processor's transfer group of its transfer: how a lost transfer is found."""
        return f"payout-{self.pk}"


class PayoutStep(models.Model):
    """One call to the processor for a payout: its transfer to the seller's processor
    account, or a bank payout from there. Never edited by hand.

    Each attempt has its own idempotency key (``payout-<id>-transfer-<n>``), used
    once: a retry is a new attempt, preceded by a look-up of what earlier attempts
    may have done (payments/payouts/sending.py), so no key is ever relied on after
    the processor forgets it (Stripe: 24 hours).
    """

    class Kind(models.TextChoices):
        TRANSFER = "transfer", "Transfer to the seller's processor account"
        BANK_PAYOUT = "bank_payout", "Bank payout"

    class Outcome(models.TextChoices):
        IN_FLIGHT = "in_flight", "Under way"
        SUCCEEDED = "succeeded", "Done"
        ADOPTED = "adopted", "Found done by an earlier attempt"
        REFUSED = "refused", "Refused by the processor"
        ERROR = "error", "No answer (retried)"

    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="steps")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    attempt = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=100, unique=True)
    amount_minor = models.BigIntegerField()
    outcome = models.CharField(
        max_length=10, choices=Outcome.choices, default=Outcome.IN_FLIGHT, db_index=True
    )
    processor_object_id = models.CharField(max_length=100, blank=True)
    object_status = models.CharField(
        max_length=20, blank=True, help_text="A bank payout's status at the processor."
    )
    error_code = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["payout_id", "started_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["payout", "kind", "attempt"], name="payments_payoutstep_attempt_once"
            ),
            models.UniqueConstraint(
                fields=["kind", "processor_object_id"],
                condition=~Q(processor_object_id=""),
                name="payments_payoutstep_object_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.attempt} of payout #{self.payout_id}"


class Clawback(models.Model):
    """Taking a seller's part of a refund or a lost dispute back from the transfer of
    the payout that paid the sale (a transfer reversal), up to what the seller's
    processor account still holds of it; what cannot be taken stays a debt that the
    next payout nets. Never edited by hand."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "Under way"
        REVERSED = "reversed", "Taken back"
        NOTHING_HELD = "nothing_held", "Nothing left to take: netted from the next payout"
        FAILED = "failed", "Refused: netted from the next payout"

    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="clawbacks")
    reason_type = models.CharField(max_length=10, help_text="refund or dispute")
    reason_id = models.PositiveBigIntegerField()
    wanted_minor = models.BigIntegerField(help_text="The seller's part of it in that payout.")
    amount_minor = models.BigIntegerField(default=0, help_text="What was taken back.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    idempotency_key = models.CharField(max_length=100, unique=True)
    processor_reversal_id = models.CharField(max_length=100, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker took it up (a lease, like a payout's)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reason_type", "reason_id", "payout"], name="payments_clawback_once"
            ),
            models.CheckConstraint(
                condition=Q(wanted_minor__gt=0, amount_minor__gte=0)
                & Q(amount_minor__lte=F("wanted_minor")),
                name="payments_clawback_amounts",
            ),
        ]

    def __str__(self) -> str:
        return f"Clawback for {self.reason_type} #{self.reason_id} from payout #{self.payout_id}"


class PayoutEntry(models.Model):
    """A ledger entry of the seller's available account that a payout pays for."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="breakdown")
    entry = models.OneToOneField(
        "payments.LedgerEntry", on_delete=models.PROTECT, related_name="payout_item"
    )

    class Meta:
        ordering = ["entry_id"]

    def __str__(self) -> str:
        return f"Entry #{self.entry_id} in payout #{self.payout_id}"
