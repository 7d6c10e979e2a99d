"""The customer service fee's admin page (payments/admin/service_fees.py): the fee typed
as money and percent, saved by its service with the reason."""

import pytest
from django.urls import reverse

from payments.models import AuditRecord, ServiceFee

pytestmark = pytest.mark.django_db


ADMIN_FEE = {
    "name": "Fee",
    "currency": "USD",
    "percentage": "2.5",
    "fixed_fee": "",
    "active_from": "2030-01-01T00:00:00",
    "active_until": "",
    "change_reason": "Launch",
}


def test_an_operator_sets_a_service_fee_as_money(operator_client):
    add = reverse("admin:payments_servicefee_add")
    assert operator_client.get(add).status_code == 200
    form = {
        "name": "Service fee",
        "currency": "USD",
        "percentage": "2.5",
        "fixed_fee": "0.30",
        "active_from": "2026-01-01T00:00:00",
        "change_reason": "Launch",
    }
    assert operator_client.post(add, form).status_code == 302
    fee = ServiceFee.objects.get()
    assert (fee.percentage_bps, fee.fixed_fee_minor) == (250, 30)
    assert AuditRecord.objects.filter(object_id=fee.pk, reason="Launch").exists()
    for bad, message in (
        ({"fixed_fee": "0.001"}, "USD"),
        ({"percentage": "0", "fixed_fee": ""}, "this fee would be zero"),
        ({"percentage": "101"}, "more than 100"),
    ):
        response = operator_client.post(add, form | bad)
        assert response.status_code == 200 and message in response.content.decode()
    assert ServiceFee.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"active_until": "2029-01-01T00:00:00"},
        {"percentage": "100.01"},
        {"percentage": "-1"},
        {"percentage": "2.555"},
        {"percentage": "0", "fixed_fee": "0"},
        {"currency": "JPY", "fixed_fee": "0.5"},
        {"currency": "KWD", "fixed_fee": "1.2345"},
        {"fixed_fee": "-1"},
        {"fixed_fee": "abc"},
        {"currency": "XXX"},
        {"change_reason": ""},
    ],
)
def test_a_bad_service_fee_in_the_admin_is_a_form_error(operator_client, change):
    from payments.models import ServiceFee

    response = operator_client.post(
        reverse("admin:payments_servicefee_add"), {**ADMIN_FEE, **change}
    )
    assert response.status_code == 200, response.status_code  # the form again, not a 500
    assert not ServiceFee.objects.exists()


def test_a_good_service_fee_in_the_admin_is_saved_in_minor_units(operator_client):
    from payments.models import ServiceFee

    response = operator_client.post(
        reverse("admin:payments_servicefee_add"),
        {**ADMIN_FEE, "currency": "KWD", "fixed_fee": "1.234"},
    )
    assert response.status_code == 302, response.content[:2000]
    fee = ServiceFee.objects.get()
    assert (fee.percentage_bps, fee.fixed_fee_minor) == (250, 1_234)
