"""A seller's transactions: their ledger as a readable, filterable history."""

from datetime import datetime, time, timedelta

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from payments.seller_history import LABELS, history_rows, seller_transactions


class HistoryFilter(forms.Form):
    currency = forms.ChoiceField(choices=[], required=False)
    kind = forms.ChoiceField(
        choices=[("", "Everything"), *LABELS.items()], required=False, label="Kind"
    )
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Included."
    )

    def __init__(self, *args, currencies, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c, c) for c in currencies]


@seller_required
@require_GET
def transactions(request):
    seller = request.seller
    currencies = sorted(
        {seller.default_currency}
        | set(seller.ledger_accounts.values_list("currency", flat=True).distinct())
    )
    form = HistoryFilter(request.GET or None, currencies=currencies)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    tz = timezone.get_current_timezone()
    start, end = filters.get("start"), filters.get("end")
    currency = filters.get("currency") or seller.default_currency
    found = seller_transactions(
        seller=seller,
        currency=currency,
        kind=filters.get("kind", ""),
        since=datetime.combine(start, time.min, tz) if start else None,
        until=datetime.combine(end + timedelta(days=1), time.min, tz) if end else None,
    )
    page = Paginator(found, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "marketplace/seller/transactions.html",
        {
            "form": form,
            "rows": history_rows(list(page.object_list)),
            "page": page,
            "currency": currency,
            "querystring": query.urlencode(),
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )
