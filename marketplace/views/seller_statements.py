"""A seller's monthly statement: a printable page and a CSV download."""

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import seller_required
from payments.ledger.balances import seller_currencies
from payments.reporting.statements import month_bounds, seller_statement, statement_csv


class StatementForm(forms.Form):
    month = forms.CharField(
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month"}),
        help_text="Year and month, e.g. 2026-11.",
    )
    currency = forms.ChoiceField(choices=[])

    def __init__(self, *args, currencies, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [(c, c) for c in currencies]

    def clean_month(self):
        value = self.cleaned_data["month"]
        try:
            return month_bounds(value)
        except ValueError:
            raise forms.ValidationError("Give a month as YYYY-MM, e.g. 2026-11.") from None


def _statement_form(request):
    seller = request.seller
    currencies = seller_currencies(seller)
    data = {
        "month": request.GET.get("month") or timezone.localdate().strftime("%Y-%m"),
        "currency": request.GET.get("currency") or seller.default_currency,
    }
    return StatementForm(data, currencies=currencies)


@seller_required
@require_GET
def statement(request):
    form = _statement_form(request)
    result = None
    if form.is_valid():
        start, end = form.cleaned_data["month"]
        result = seller_statement(
            seller=request.seller, currency=form.cleaned_data["currency"], start=start, end=end
        )
    return render(
        request,
        "marketplace/seller/statement.html",
        {"form": form, "statement": result},
        status=200 if form.is_valid() else 400,
    )


@seller_required
@require_GET
def statement_download(request):
    form = _statement_form(request)
    if not form.is_valid():
        return render(
            request,
            "marketplace/seller/statement.html",
            {"form": form, "statement": None},
            status=400,
        )
    start, end = form.cleaned_data["month"]
    result = seller_statement(
        seller=request.seller, currency=form.cleaned_data["currency"], start=start, end=end
    )
    response = HttpResponse(statement_csv(result), content_type="text/csv; charset=utf-8")
    name = f"statement-{request.seller.slug}-{start:%Y-%m}-{result.currency}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
