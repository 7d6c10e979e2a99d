"""The double-entry ledger: the source of truth for who is owed what.

Sign convention: an entry's amount is positive for money the platform holds
or spent (the processor account, fees) and negative for money it owes or
earned (sellers' accounts, commission). Every transaction's entries sum to
zero per currency. Transactions and entries are append-only: a correction is
a new transaction, never an edit.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce

from marketplace.kernel.currencies import format_amount


class AppendOnlyError(Exception):
    """A ledger row was about to be changed or deleted."""


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Ledger rows are never updated; post a correcting transaction.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Ledger rows are never deleted; post a correcting transaction.")


class AppendOnlyModel(models.Model):
    """Rows that can be inserted once and never changed through the ORM.

    PostgreSQL enforces the same with a trigger (migration 0002), for anyone
    who bypasses the ORM.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{type(self).__name__} rows are never deleted.")


class LedgerAccountQuerySet(models.QuerySet["LedgerAccount"]):
    def with_balance(self) -> LedgerAccountQuerySet:
        """Each account with ``balance``: its running balance, whoever owns it.

        The one way to read balances: a seller account's is ``balance_minor``; a
        platform account's is the sum of its balance shards (``balance_minor``
        stays 0). One correlated ``SUM`` over at most ``LEDGER_BALANCE_SHARDS``
        rows per platform account; none for a seller's, which has no shards.
        """
        shards = (
            LedgerBalanceShard.objects.filter(account=OuterRef("pk"))
            .order_by()
            .values("account")
            .annotate(total=Sum("balance_minor"))
            .values("total")
        )
        # The annotation is declared on the model (``LedgerAccount.balance``).
        return self.annotate(  # type: ignore[no-redef]
            balance=F("balance_minor")
            + Coalesce(Subquery(shards), 0, output_field=models.BigIntegerField())
        )


class LedgerAccount(models.Model):
    """One account per owner (the platform, or a seller), kind and currency.

    A seller account's ``balance_minor`` is a running total kept for fast
    reads; it is changed only by the posting service, under a row lock, in the
    same database transaction as the entries, and ``check_ledger`` proves it
    equals the sum of the entries. A platform account's ``balance_minor`` is
    always 0: every posting touches the platform, so its running total is kept
    in ``LedgerBalanceShard`` rows instead (docs/decisions/0004). Read
    balances with ``LedgerAccount.objects.with_balance()``.
    """

    class Kind(models.TextChoices):
        # The platform's accounts
        PROCESSOR = "processor", "Cash at the processor"
        COMMISSION = "commission", "Commission earned"
        PROCESSOR_FEES = "processor_fees", "Processor fees"
        DISPUTES = "disputes", "Withdrawn by the processor for open disputes"
        BANK = "bank", "Paid from the platform's bank (manual payouts)"
        LOSSES = "losses", "Losses borne by the platform"
        CONNECTED = "connected", "In sellers' processor accounts, not yet paid out"
        PLAN_FEES = "plan_fees", "Seller plan fees earned"
        LISTING_FEES = "listing_fees", "Listing fees earned"
        SERVICE_FEES = "service_fees", "Customer service fees earned"
        # A seller's accounts
        PENDING = "pending", "Pending (in hold)"
        AVAILABLE = "available", "Available for payout"
        IN_TRANSIT = "in_transit", "Payout in transit"
        DISPUTED = "disputed", "Held for a dispute"

    PLATFORM_KINDS = (
        Kind.PROCESSOR,
        Kind.COMMISSION,
        Kind.PROCESSOR_FEES,
        Kind.DISPUTES,
        Kind.BANK,
        Kind.LOSSES,
        Kind.CONNECTED,
        Kind.PLAN_FEES,
        Kind.LISTING_FEES,
        Kind.SERVICE_FEES,
    )
    SELLER_KINDS = (Kind.PENDING, Kind.AVAILABLE, Kind.IN_TRANSIT, Kind.DISPUTED)

    seller = models.ForeignKey(
        "accounts.Seller",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
        help_text="Empty for the platform's own accounts.",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    balance_minor = models.BigIntegerField(
        default=0, help_text="A seller account's running balance; 0 for the platform's."
    )

    objects = LedgerAccountQuerySet.as_manager()

    # Set on the accounts of ``LedgerAccount.objects.with_balance()`` only.
    balance: int

    class Meta:
        ordering = ["seller_id", "currency", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["seller", "kind", "currency"],
                name="payments_ledgeraccount_one_per_seller_kind_currency",
            ),
            models.UniqueConstraint(
                fields=["kind", "currency"],
                condition=Q(seller__isnull=True),
                name="payments_ledgeraccount_one_platform_per_kind_currency",
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        seller__isnull=True,
                        kind__in=[
                            "processor",
                            "commission",
                            "processor_fees",
                            "disputes",
                            "bank",
                            "losses",
                            "connected",
                            "plan_fees",
                            "listing_fees",
                            "service_fees",
                        ],
                    )
                    | Q(
                        seller__isnull=False,
                        kind__in=["pending", "available", "in_transit", "disputed"],
                    )
                ),
                name="payments_ledgeraccount_kind_fits_owner",
            ),
            models.CheckConstraint(
                condition=Q(seller__isnull=False) | Q(balance_minor=0),
                name="payments_ledgeraccount_platform_balance_in_shards",
            ),
        ]

    def __str__(self) -> str:
        owner = self.seller.display_name if self.seller_id and self.seller else "Platform"
        return f"{owner} · {self.get_kind_display()} · {self.currency}"


class LedgerBalanceShard(models.Model):
    """One of a platform account's running balance shards: the account's balance is
    the sum of its shards.

    A posting adds its amount on a platform account to one shard, chosen by its
    idempotency key (``payments.ledger.posting.balance_shard``), with one upsert under
    that row's lock, so concurrent postings spread over ``LEDGER_BALANCE_SHARDS``
    rows instead of queueing on one. Not append-only: a shard is a running total,
    changed only by the posting service in the same database transaction as the
    entries; ``check_ledger`` proves each account's shards sum to its entries.
    """

    # No index of its own: the unique (account, shard) index starts with it.
    account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="shards", db_index=False
    )
    shard = models.PositiveSmallIntegerField()
    balance_minor = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["account_id", "shard"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "shard"], name="payments_ledgerbalanceshard_one_per_shard"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} · shard {self.shard}"


class LedgerTransaction(AppendOnlyModel):
    """One business event, posted once: its idempotency key is unique."""

    class Kind(models.TextChoices):
        PAYMENT_CAPTURED = "payment_captured", "Payment captured"
        PROCESSOR_FEE = "processor_fee", "Processor fee"
        HOLD_RELEASED = "hold_released", "Hold released"
        REFUND = "refund", "Refund"
        REFUND_REVERSED = "refund_reversed", "Refund reversed"
        PAYOUT_SENT = "payout_sent", "Payout sent"
        PAYOUT_TRANSFERRED = "payout_transferred", "Payout transferred"
        PAYOUT_PAID = "payout_paid", "Payout paid"
        PAYOUT_RETURNED = "payout_returned", "Payout returned by the bank"
        TRANSFER_REVERSED = "transfer_reversed", "Clawed back"
        PAYOUT_FAILED = "payout_failed", "Payout failed"
        DISPUTE_OPENED = "dispute_opened", "Dispute opened"
        DISPUTE_WON = "dispute_won", "Dispute won"
        DISPUTE_LOST = "dispute_lost", "Dispute lost"
        ADJUSTMENT = "adjustment", "Adjustment"
        PLAN_FEE = "plan_fee", "Plan fee"
        PLAN_FEE_CREDIT = "plan_fee_credit", "Plan fee credited"
        LISTING_FEE = "listing_fee", "Listing fee"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    reference_type = models.CharField(
        max_length=40, help_text="What the event is about: order, refund, payout."
    )
    reference_id = models.CharField(max_length=64)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["reference_type", "reference_id"], name="ledgertxn_reference_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.idempotency_key})"


class LedgerEntry(AppendOnlyModel):
    """A signed amount on one account, part of one transaction."""

    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # A copy of the transaction's kind (which never changes), so that "what did sales,
    # refunds, payouts do to this account" is answered from one index, without a join.
    transaction_kind = models.CharField(max_length=20, choices=LedgerTransaction.Kind.choices)
    order_line = models.ForeignKey(
        "marketplace.OrderLine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        help_text="The order line this amount comes from, where there is one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["transaction_id", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["account", "created_at"], name="ledgerentry_account_time_idx"),
            # Per-kind sums over a period (the earnings charts, reserves, paid out):
            # index-only scans on PostgreSQL, which stores the amount in the index.
            models.Index(
                fields=["account", "transaction_kind", "created_at"],
                include=["amount_minor"],
                name="ledgerentry_acct_kind_time_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount_minor=0), name="payments_ledgerentry_amount_not_zero"
            ),
        ]

    def __str__(self) -> str:
        sign = "+" if self.amount_minor > 0 else ""
        return f"{sign}{format_amount(self.amount_minor, self.currency)} on {self.account}"


class RevenueReport(LedgerTransaction):
    """The admin's revenue report page (a view of the ledger; no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "revenue report"
        verbose_name_plural = "revenue report"


class ReconciliationReport(LedgerTransaction):
    """The admin's reconciliation page (the ledger against the processor; no table)."""

    class Meta:
        proxy = True
        verbose_name = "reconciliation"
        verbose_name_plural = "reconciliation"
