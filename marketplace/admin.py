import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from marketplace.kernel.currencies import (
    AmountError,
    amount_typed_to_minor,
    format_amount,
    to_major_units,
)
from marketplace.kernel.errors import ApplicationError, InvalidRequest
from marketplace.kernel.task_queue import deferred_tasks_send
from marketplace.models import Category, DeferredTask, Order, OrderLine, Product, SellerOrder
from marketplace.services.products import products_set_active_bulk
from payments.admin.audit import HistoryInline
from payments.admin.base import ReadOnlyWithActionsAdmin
from payments.admin.money import ConfirmForm, confirm_context
from payments.collection.refunds import order_refund_by_operator, refund_preview, refund_refusal
from payments.models import (
    Dispute,
    DisputeLine,
    LedgerEntry,
    LedgerTransaction,
    Payout,
    Refund,
    RefundLine,
)


class CategoryListFilter(admin.RelatedFieldListFilter):
    """Categories by their full name ("Books › Fiction"), read in one query."""

    def field_choices(self, field, request, model_admin):
        return [
            (category.pk, str(category))
            for category in Category.objects.select_related("parent").order_by(
                "parent__name", "position", "name"
            )
        ]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent", "position")
    list_filter = (("parent", CategoryListFilter),)
    list_editable = ("position",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    list_select_related = ("parent",)


class ProductAdminForm(forms.ModelForm):
    """A product with its price typed in its currency (12.50 USD, 1500 JPY), checked
    against the currency's decimals like the seller's own form."""

    price = forms.CharField(
        label="Price",
        max_length=20,
        help_text="In the product's currency, e.g. 12.50; yen have no decimals.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    class Meta:
        model = Product
        fields = (
            "seller",
            "title",
            "slug",
            "category",
            "description",
            "currency",
            "stock",
            "is_active",
            "is_featured",
            "image",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        product = self.instance
        if product.pk is not None and product.currency:
            self.initial.setdefault(
                "price", str(to_major_units(product.price_minor, product.currency))
            )

    def clean(self):
        cleaned = super().clean()
        price, currency = cleaned.get("price"), cleaned.get("currency")
        if price and currency:
            try:
                self.instance.price_minor = amount_typed_to_minor(price, currency)
            except AmountError as exc:
                self.add_error("price", str(exc))
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = (
        "title",
        "seller",
        "category",
        "price",
        "stock",
        "is_active",
        "is_featured",
        "created_at",
    )
    list_filter = (
        "is_active",
        "is_featured",
        "currency",
        ("category", CategoryListFilter),
        "created_at",
    )
    list_editable = ("is_featured",)
    search_fields = ("title", "slug", "description", "seller__display_name", "seller__slug")
    list_select_related = ("seller", "category", "category__parent")
    autocomplete_fields = ("seller",)
    readonly_fields = ("created_at", "updated_at", "image_preview")
    date_hierarchy = "created_at"
    actions = ("list_products", "unlist_products")
    fieldsets = (
        (None, {"fields": ("seller", "title", "slug", "category", "description")}),
        ("Price and stock", {"fields": ("price", "currency", "stock")}),
        ("Visibility", {"fields": ("is_active", "is_featured")}),
        ("Image", {"fields": ("image", "image_preview")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="price", ordering="price_minor")
    def price(self, obj: Product) -> str:
        return format_amount(obj.price_minor, obj.currency)

    @admin.display(description="preview")
    def image_preview(self, obj: Product) -> str:
        if not obj.image:
            return "—"
        return format_html('<img src="{}" alt="" style="max-height:160px">', obj.image.url)

    @admin.action(description="List selected products in the shop", permissions=["change"])
    def list_products(self, request, queryset):
        updated = products_set_active_bulk(products=queryset, active=True)
        self.message_user(request, f"{updated} product(s) listed.")

    @admin.action(description="Hide selected products from the shop", permissions=["change"])
    def unlist_products(self, request, queryset):
        updated = products_set_active_bulk(products=queryset, active=False)
        self.message_user(request, f"{updated} product(s) hidden.")


def rule_text(line: OrderLine, currency: str) -> str:
    """The commission rule recorded on a line, in words: "10% + $0.30 (min $1.00)"."""
    parts = []
    if line.rule_percentage_bps:
        parts.append(f"{(Decimal(line.rule_percentage_bps) / 100).normalize():f}%")
    if line.rule_fixed_fee_minor:
        parts.append(format_amount(line.rule_fixed_fee_minor, currency))
    text = " + ".join(parts) or "no commission"
    limits = []
    if line.rule_minimum_minor:
        limits.append(f"min {format_amount(line.rule_minimum_minor, currency)}")
    if line.rule_maximum_minor is not None:
        limits.append(f"max {format_amount(line.rule_maximum_minor, currency)}")
    return f"{text} ({', '.join(limits)})" if limits else text


@dataclass
class SellerPart:
    """One seller's part of an order as its admin page shows it, with what touched it."""

    seller_order: SellerOrder
    lines: list[OrderLine] = field(default_factory=list)
    refunds: dict[int, Refund] = field(default_factory=dict)
    disputes: dict[int, Dispute] = field(default_factory=dict)
    payouts: dict[int, Payout] = field(default_factory=dict)
    transactions: dict[int, LedgerTransaction] = field(default_factory=dict)

    @property
    def refunded_seller_minor(self) -> int:
        return sum(line.refunded_seller_minor for line in self.lines)

    @property
    def refunded_commission_minor(self) -> int:
        return sum(line.refunded_commission_minor for line in self.lines)

    @property
    def refundable_minor(self) -> int:
        return self.seller_order.gross_minor - self.seller_order.refunded_minor


def order_seller_parts(order: Order) -> list[SellerPart]:
    """Each seller's part of the order with its lines, refunds, disputes, the payouts
    that paid it and its ledger transactions: a fixed number of queries, whatever the
    number of lines."""
    parts = {
        so.pk: SellerPart(so)
        for so in SellerOrder.objects.filter(order=order).select_related("seller").order_by("pk")
    }
    for line in (
        OrderLine.objects.filter(order=order)
        .select_related("commission_rule")
        .order_by("seller_order_id", "pk")
    ):
        line.rule_text = rule_text(line, order.currency)
        parts[line.seller_order_id].lines.append(line)
    for refund_line in RefundLine.objects.filter(order_line__order=order).select_related(
        "refund", "order_line"
    ):
        part = parts[refund_line.order_line.seller_order_id]
        part.refunds[refund_line.refund_id] = refund_line.refund
    for dispute_line in DisputeLine.objects.filter(order_line__order=order).select_related(
        "dispute", "order_line"
    ):
        part = parts[dispute_line.order_line.seller_order_id]
        part.disputes[dispute_line.dispute_id] = dispute_line.dispute
    paid_by = set()
    for payout in (
        Payout.objects.filter(breakdown__entry__order_line__order=order)
        .annotate(seller_order_id=F("breakdown__entry__order_line__seller_order_id"))
        .distinct()
        .order_by("pk")
    ):
        paid_by.add((payout.pk, payout.seller_order_id))
        parts[payout.seller_order_id].payouts[payout.pk] = payout
    touched = set(
        LedgerEntry.objects.filter(order_line__order=order)
        .values_list("transaction_id", "order_line__seller_order_id")
        .distinct()
    )
    payout_refs = {str(payout_id): seller_order_id for payout_id, seller_order_id in paid_by}
    transactions = LedgerTransaction.objects.filter(
        Q(pk__in={txn_id for txn_id, _ in touched})
        | Q(reference_type="payout", reference_id__in=list(payout_refs))
    ).order_by("created_at", "pk")
    by_txn: dict[int, set[int]] = {}
    for txn_id, seller_order_id in touched:
        by_txn.setdefault(txn_id, set()).add(seller_order_id)
    for txn in transactions:
        owners = set(by_txn.get(txn.pk, ()))
        if txn.reference_type == "payout":
            owners |= {so_id for payout_id, so_id in paid_by if str(payout_id) == txn.reference_id}
        for seller_order_id in sorted(owners):
            parts[seller_order_id].transactions[txn.pk] = txn
    return list(parts.values())


@admin.register(Order)
class OrderAdmin(ReadOnlyWithActionsAdmin):
    """Orders are written by the order, payment and refund services; here they are read:
    every field is read-only, nothing is added or deleted, even by a superuser.

    The page shows each seller's part (lines, commission, refunds, disputes, the
    payouts that paid it, its ledger transactions, each linked), and operators with the
    ``operate`` permission refund lines or a seller's part through a confirmation page
    that shows the effect first (``refund_preview``), then ``order_refund_by_operator``.
    """

    change_form_template = "admin/marketplace/order/change_form.html"
    list_display = (
        "__str__",
        "customer",
        "status",
        "total",
        "commission",
        "refunded",
        "created_at",
    )
    list_filter = ("status", "currency", "created_at")
    search_fields = ("id", "customer__email", "seller_orders__seller__display_name")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "customer",
                    "status",
                    "total",
                    "commission",
                    "service_fee_amount",
                    "refunded",
                    "refundable",
                    "created_at",
                    "paid_at",
                )
            },
        ),
        (
            "Shipping",
            {
                "fields": (
                    "shipping_name",
                    "shipping_line1",
                    "shipping_line2",
                    "shipping_city",
                    "shipping_postal_code",
                    "shipping_country",
                )
            },
        ),
    )
    readonly_fields = ("total", "commission", "service_fee_amount", "refunded", "refundable")
    inlines = [HistoryInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer")

    def get_urls(self):
        own = [
            path(
                "<int:pk>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="marketplace_order_refund",
            )
        ]
        return own + super().get_urls()

    @admin.display(description="total", ordering="total_minor")
    def total(self, order: Order) -> str:
        return format_amount(order.total_minor, order.currency)

    @admin.display(description="commission", ordering="commission_minor")
    def commission(self, order: Order) -> str:
        return format_amount(order.commission_minor, order.currency)

    @admin.display(description="customer service fee")
    def service_fee_amount(self, order: Order) -> str:
        """Part of the total, kept by the platform; what refunds gave back of it."""
        fee = format_amount(order.service_fee_minor, order.currency)
        if not order.service_fee_refunded_minor:
            return fee
        back = format_amount(order.service_fee_refunded_minor, order.currency)
        return f"{fee} ({back} refunded)"

    @admin.display(description="refunded", ordering="refunded_minor")
    def refunded(self, order: Order) -> str:
        return format_amount(order.refunded_minor, order.currency)

    @admin.display(description="left to refund")
    def refundable(self, order: Order) -> str:
        return format_amount(order.refundable_minor, order.currency)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        order = Order.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        if order is not None:
            refusal = ""
            try:
                refund_refusal(order)
            except ApplicationError as exc:
                refusal = str(exc)
            extra.update(
                seller_parts=order_seller_parts(order),
                refund_refusal=refusal,
                can_refund=self.has_operate_permission(request) and not refusal,
                ledger_url=reverse("admin:payments_ledgertransaction_changelist")
                + "?"
                + urlencode({"q": f"order {order.pk}"}),
                order_currency=order.currency,
            )
        return super().change_view(request, object_id, form_url, extra)

    def refund_view(self, request, pk):
        """GET: the effect of refunding the lines chosen on the order page (or one
        seller's whole part); POST with a reason: refund exactly that, once."""
        if not self.has_operate_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order, pk=pk)
        back = reverse("admin:marketplace_order_change", args=[order.pk])
        lines = list(order.lines.order_by("seller_order_id", "pk"))
        form = ConfirmForm(request.POST or None, initial={"confirmation": uuid.uuid4().hex})
        refusal = ""
        try:
            if request.method == "POST":
                amounts = _confirmed_amounts(request.POST, lines, order.currency)
                _check_previewed(request.POST, order, amounts)
            else:
                amounts = _chosen_amounts(request.GET, lines, order.currency)
        except ApplicationError as exc:
            self.message_user(request, f"{exc} Nothing was refunded.", level=messages.ERROR)
            return HttpResponseRedirect(back)
        if request.method == "POST" and form.is_valid():
            try:
                result = order_refund_by_operator(
                    order=order,
                    line_amounts=amounts,
                    by=request.user,
                    reason=form.cleaned_data["reason"],
                    confirmation=form.cleaned_data["confirmation"],
                )
            except ApplicationError as exc:
                refusal = f"{exc} Nothing was refunded."
            else:
                refund = result.refund
                money = format_amount(refund.amount_minor, refund.currency)
                if refund.status == Refund.Status.FAILED:
                    self.message_user(
                        request,
                        f"Refund #{refund.pk} of {money} was refused by the processor: "
                        f"{refund.failure_reason or 'no reason given'}. Nothing was refunded.",
                        level=messages.ERROR,
                    )
                elif result.created:
                    self.message_user(
                        request,
                        f"Refund #{refund.pk} of {money} made and sent to the processor; the "
                        "customer and the sellers are emailed when it succeeds.",
                        level=messages.SUCCESS,
                    )
                else:
                    self.message_user(
                        request,
                        f"This refund was confirmed already (refund #{refund.pk} of {money}); "
                        "nothing more was refunded.",
                        level=messages.WARNING,
                    )
                return HttpResponseRedirect(back)
        try:
            preview = refund_preview(order=order, line_amounts=amounts)
        except ApplicationError as exc:
            self.message_user(
                request, refusal or f"{exc} Nothing was refunded.", level=messages.ERROR
            )
            return HttpResponseRedirect(back)
        hidden = [
            (f"refund-{line_id}", to_major_units(amount, order.currency))
            for line_id, amount in preview.line_amounts.items()
        ]
        confirmation = form["confirmation"].value() or uuid.uuid4().hex
        hidden.append(("previewed", _previewed(order, confirmation, preview.line_amounts)))
        context = confirm_context(
            self.admin_site,
            request,
            self.opts,
            title=f"Refund {format_amount(preview.amount_minor, order.currency)} of order "
            f"#{order.pk}?",
            order=order,
            preview=preview,
            refusal=refusal,
            form=form,
            hidden_amounts=hidden,
            decision="refund",
            confirm_label=f"Refund {format_amount(preview.amount_minor, order.currency)}",
            cancel_url=back,
            breadcrumb_url=back,
            breadcrumb_label=str(order),
        )
        return TemplateResponse(request, "admin/payments/refund_confirm.html", context)


PREVIEW_SALT = "marketplace.admin.order-refund-preview"
PREVIEW_MAX_AGE = 2 * 3600  # seconds a confirmation page stays good


def _previewed(order: Order, confirmation: str, amounts) -> str:
    """The page's signature of what it previewed: this order, these amounts, this key."""
    return signing.dumps(
        {"order": order.pk, "key": confirmation, "amounts": sorted(amounts.items())},
        salt=PREVIEW_SALT,
    )


def _check_previewed(data, order: Order, amounts: dict[int, int]) -> None:
    """Refund exactly what the operator saw: the amounts posted must be those the page
    previewed and signed (an edited page, or one for another order, is refused)."""
    try:
        signed = signing.loads(
            str(data.get("previewed", "")), salt=PREVIEW_SALT, max_age=PREVIEW_MAX_AGE
        )
    except signing.SignatureExpired as exc:
        raise InvalidRequest("This confirmation page is too old: open it again.") from exc
    except signing.BadSignature as exc:
        raise InvalidRequest("This confirmation page was changed: open it again.") from exc
    previewed = {int(line_id): int(amount) for line_id, amount in signed["amounts"]}
    if signed["order"] != order.pk or signed["key"] != data.get("confirmation"):
        raise InvalidRequest("This confirmation page is not this refund's: open it again.")
    if previewed != amounts:
        raise InvalidRequest(
            "The amounts differ from those the page showed: open the confirmation page again."
        )


def _chosen_amounts(data, lines: list[OrderLine], currency: str) -> dict[int, int]:
    """The amounts chosen on the order page: one seller's whole part
    (``seller_order``), or per line a quantity (``qty-<id>``) or an amount
    (``amount-<id>``, in the currency's units; it wins over the quantity)."""
    if data.get("seller_order"):
        seller_order_id = _whole(data["seller_order"], "seller order")
        amounts = {
            line.pk: line.refundable_minor
            for line in lines
            if line.seller_order_id == seller_order_id and line.refundable_minor > 0
        }
        if not amounts:
            raise InvalidRequest("Nothing is left to refund of that seller's part.")
        return amounts
    amounts = {}
    for line in lines:
        amount = str(data.get(f"amount-{line.pk}", "")).strip()
        quantity = str(data.get(f"qty-{line.pk}", "")).strip()
        if amount:
            amounts[line.pk] = _minor(amount, currency, line)
        elif quantity:
            count = _whole(quantity, f"quantity of “{line.title}”")
            if count > line.quantity:
                raise InvalidRequest(f"“{line.title}” was bought {line.quantity} time(s) only.")
            amounts[line.pk] = count * line.unit_price_minor
    if not any(amounts.values()):
        raise InvalidRequest("Choose a quantity or an amount to refund on at least one line.")
    return amounts


def _confirmed_amounts(data, lines: list[OrderLine], currency: str) -> dict[int, int]:
    """The amounts the confirmation page carried (``refund-<id>``)."""
    amounts = {
        line.pk: _minor(str(data[f"refund-{line.pk}"]), currency, line)
        for line in lines
        if data.get(f"refund-{line.pk}")
    }
    if not amounts:
        raise InvalidRequest("The confirmation named no line to refund.")
    return amounts


def _whole(text: str, what: str) -> int:
    # ASCII digits only ("²" is a digit to isdigit(), not to int()), and few enough
    # for int() (which refuses strings of more than 4,300 digits).
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidRequest(f"The {what} must be a whole number.")
    return int(text)


def _minor(text: str, currency: str, line: OrderLine) -> int:
    try:
        return amount_typed_to_minor(text, currency)
    except AmountError as exc:
        raise InvalidRequest(f"The amount for “{line.title}”: {exc}") from exc


@admin.register(DeferredTask)
class DeferredTaskAdmin(ReadOnlyWithActionsAdmin):
    """Tasks the broker refused while it was down; sent again every minute by beat.
    Rows that stay here mean the broker is still down (see /healthz)."""

    list_display = ("task", "args", "attempts", "error", "created_at")
    list_filter = ("task",)
    date_hierarchy = "created_at"
    actions = ["send_now"]

    def has_delete_permission(self, request, obj=None):
        # A row naming a task that no longer exists can only be removed by hand.
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.action(description="Queue the selected tasks again now", permissions=["operate"])
    def send_now(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True))
        sent = deferred_tasks_send(pks=pks)
        level = messages.SUCCESS if sent == len(pks) else messages.WARNING
        self.message_user(
            request, f"Queued {sent} of {len(pks)}; the rest wait for the broker.", level
        )
