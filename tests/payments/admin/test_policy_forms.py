"""The payout policy form takes minimums and approval thresholds as money, a box per
currency, stores them in minor units, and shows them back (and in the list) as money."""

import pytest
from django.urls import reverse

from marketplace.kernel.currencies import SUPPORTED_CURRENCIES
from payments.admin.policy_forms import PayoutPolicyForm
from payments.models import AuditRecord, PayoutPolicy

pytestmark = pytest.mark.django_db

BOX = {code: index for index, code in enumerate(SUPPORTED_CURRENCIES)}


def _form(seller, *, minimums=None, thresholds=None, **fields):
    data = {
        "seller": seller.pk,
        "method": "processor",
        "schedule": "weekly",
        "weekday": "0",
        "month_day": "1",
        "hold_days": "7",
        "reserve": "0",
        "reserve_days": "90",
        "frozen_reason": "",
        "change_reason": "Seller asked for weekly payouts",
        **fields,
    }
    for code, amount in (minimums or {}).items():
        data[f"minimums_{BOX[code]}"] = amount
    for code, amount in (thresholds or {}).items():
        data[f"approval_thresholds_{BOX[code]}"] = amount
    return data


ADD = "admin:payments_payoutpolicy_add"


def test_money_is_stored_in_minor_units_per_currency(operator_client, seller):
    response = operator_client.post(
        reverse(ADD),
        _form(
            seller,
            minimums={"USD": "25.00", "EUR": "20.5", "JPY": "3000"},
            thresholds={"USD": "5,000", "KWD": "1.250"},
        ),
    )

    assert response.status_code == 302
    policy = PayoutPolicy.objects.get(seller=seller)
    assert policy.minimums == {"USD": 2500, "EUR": 2050, "JPY": 3000}
    assert policy.approval_thresholds == {"USD": 500000, "KWD": 1250}
    record = AuditRecord.objects.get(object_id=policy.pk)
    assert record.reason == "Seller asked for weekly payouts" and record.via == "admin"


def test_the_form_shows_stored_amounts_as_money_and_saving_again_changes_nothing(
    operator_client, seller
):
    policy = PayoutPolicy.objects.create(
        seller=seller, schedule="weekly", minimums={"USD": 2500, "JPY": 3000, "EUR": 1999}
    )
    url = reverse("admin:payments_payoutpolicy_change", args=[policy.pk])

    page = operator_client.get(url).text
    saved = operator_client.post(
        url,
        _form(
            seller,
            minimums={"USD": "25.00", "JPY": "3000", "EUR": "19.99"},
            change_reason="No change",
        ),
    )

    assert 'name="minimums_0" value="25.00"' in page
    assert f'name="minimums_{BOX["JPY"]}" value="3000"' in page
    assert f'name="minimums_{BOX["EUR"]}" value="19.99"' in page
    assert saved.status_code == 302
    assert PayoutPolicy.objects.get().minimums == {"USD": 2500, "JPY": 3000, "EUR": 1999}
    assert not AuditRecord.objects.exists()  # nothing changed: nothing recorded


@pytest.mark.parametrize(
    ("minimums", "error"),
    [
        ({"USD": "12.345"}, "USD amounts have at most 2 decimal places."),
        ({"JPY": "100.5"}, "JPY amounts have no decimal places."),
        ({"EUR": "-5"}, "EUR: The amount cannot be negative."),
        ({"GBP": "ten"}, "GBP: Enter an amount such as 12.50."),
        (
            {"USD": "25,00"},
            "USD: Use a point before the decimals (12.50) and commas only between thousands "
            "(1,250.50).",
        ),
    ],
)
def test_bad_amounts_are_form_errors_and_nothing_is_saved(operator_client, seller, minimums, error):
    response = operator_client.post(reverse(ADD), _form(seller, minimums=minimums))

    assert response.status_code == 200
    assert error in response.text
    assert not PayoutPolicy.objects.exists() and not AuditRecord.objects.exists()


def test_every_bad_box_is_named_at_once(seller):
    form = PayoutPolicyForm(
        data=_form(seller, minimums={"USD": "1.001", "JPY": "1.5"}, thresholds={"EUR": "-1"})
    )

    assert not form.is_valid()
    assert form.errors["minimums"] == [
        "USD amounts have at most 2 decimal places.",
        "JPY amounts have no decimal places.",
    ]
    assert form.errors["approval_thresholds"] == ["EUR: The amount cannot be negative."]


def test_each_box_has_a_label_naming_its_currency(operator_client, seller):
    page = operator_client.get(reverse(ADD)).text

    for index, code in enumerate(SUPPORTED_CURRENCIES):
        assert (
            f'<label for="id_minimums_{index}"><span class="visually-hidden">Minimum payout in '
            f"</span>{code}</label>"
        ) in page
    assert 'name="change_reason"' in page  # the reason for the change is still asked


def test_the_seller_is_picked_by_name_from_a_labelled_list(operator_client, seller, other_seller):
    # A plain <select>: select2's autocomplete box has no accessible name (axe-core).
    page = operator_client.get(reverse(ADD)).text

    assert '<label for="id_seller">' in page and '<select name="seller"' in page
    assert page.index(">Acme</option>") < page.index(">Rival</option>")
    assert "None: the platform default" in page


def test_the_list_shows_amounts_as_money(operator_client, seller):
    PayoutPolicy.objects.create(
        seller=seller, minimums={"USD": 2500, "JPY": 3000}, approval_thresholds={"EUR": 100000}
    )

    page = operator_client.get(reverse("admin:payments_payoutpolicy_changelist")).text

    assert "¥3,000, $25.00" in page and "€1,000.00" in page


def test_the_list_shows_each_policy_in_words(operator_client, seller):
    PayoutPolicy.objects.create(seller=seller, schedule="weekly", weekday=4, reserve_bps=500)

    page = operator_client.get(reverse("admin:payments_payoutpolicy_changelist")).text

    assert "weekly on Fridays, 7-day hold, 5% reserve for 90 days" in page


def test_the_reserve_is_typed_as_a_percentage(operator_client, seller):
    url = reverse("admin:payments_payoutpolicy_add")

    saved = operator_client.post(url, _form(seller, reserve="12.5"))
    refused = operator_client.post(url, _form(seller, reserve="101"))

    assert saved.status_code == 302
    assert PayoutPolicy.objects.get(seller=seller).reserve_bps == 1250
    assert refused.status_code == 200 and "cannot be more than 100%" in refused.text
    page = operator_client.get(
        reverse("admin:payments_payoutpolicy_change", args=[PayoutPolicy.objects.get().pk])
    )
    assert 'value="12.5' in page.text and "basis points" not in page.text
