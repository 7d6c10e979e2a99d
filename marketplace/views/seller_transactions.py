"""A seller's transactions: their ledger as a readable, filterable history, one row per
event (a payout's steps in one row) with the running balance of their pending and
available accounts after each."""

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from payments.ledger.balances import seller_currencies
from payments.ledger.labels import LABELS
from payments.reporting.earnings_schedule import when_sold_earnings_are_paid
from payments.reporting.periods import days_between
from payments.reporting.seller_history import running_balances


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
    form = HistoryFilter(request.GET or None, currencies=seller_currencies(seller))
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    since, until = days_between(filters.get("start"), filters.get("end"))
    currency = filters.get("currency") or seller.default_currency
    found = running_balances(
        seller=seller,
        currency=currency,
        kind=filters.get("kind", ""),
        since=since,
        until=until,
    )
    page = Paginator(found, 50).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    told = {row.seller_order_id for row in rows if row.tells_sale_story}
    when = when_sold_earnings_are_paid(seller=seller, seller_order_ids=told)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "marketplace/seller/transactions.html",
        {
            "form": form,
            "rows": [
                (row, when.get(row.seller_order_id) if row.tells_sale_story else None)
                for row in rows
            ],
            "page": page,
            "currency": currency,
            "querystring": query.urlencode(),
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )
