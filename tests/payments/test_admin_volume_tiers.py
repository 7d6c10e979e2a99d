"""Operators set a rule's volume tiers in the rule's admin page: amounts typed as money
in the rule's currency, percentages in percent; a gap, an overlap or a missing currency
is a clear error on the page and nothing is saved; the service records the change.
The customer service fee has its own admin page, saved by its service."""

import pytest
from django.urls import reverse

from payments.models import AuditRecord, ServiceFee, VolumeTier
from tests.factories import CommissionRuleFactory

pytestmark = pytest.mark.django_db


def rule_form(rule, tiers, **changes):
    data = {
        "name": rule.name,
        "scope": "default",
        "percentage": "10",
        "currency": rule.currency,
        "fixed_fee": "",
        "minimum": "",
        "maximum": "",
        "active_from": "2026-01-01T00:00:00",
        "change_reason": "Volume discounts",
        "tiers-TOTAL_FORMS": str(len(tiers)),
        "tiers-INITIAL_FORMS": "0",
        "tiers-MIN_NUM_FORMS": "0",
        "tiers-MAX_NUM_FORMS": "1000",
    }
    for i, (start, top, percent) in enumerate(tiers):
        data |= {
            f"tiers-{i}-sales_from": start,
            f"tiers-{i}-sales_up_to": top,
            f"tiers-{i}-percentage": percent,
            f"tiers-{i}-rule": str(rule.pk),
        }
    return data | changes


def url(rule):
    return reverse("admin:payments_commissionrule_change", args=[rule.pk])


def test_tiers_typed_as_money_are_saved_by_the_service(operator_client):
    rule = CommissionRuleFactory(name="Platform", currency="USD")
    response = operator_client.post(
        url(rule), rule_form(rule, [("0", "1,000.00", "10"), ("1000", "", "6.5")])
    )
    assert response.status_code == 302, response.context["inline_admin_formsets"][
        0
    ].formset.non_form_errors()
    assert list(rule.tiers.values_list("from_minor", "up_to_minor", "percentage_bps")) == [
        (0, 100_000, 1000),
        (100_000, None, 650),
    ]
    assert AuditRecord.objects.filter(
        reason="Volume discounts", changes__has_key="volume_tiers"
    ).exists()
    page = operator_client.get(url(rule)).content.decode()
    assert 'value="1000.00"' in page and 'value="6.5' in page


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([("0", "1000", "10"), ("900", "", "6")], "overlaps the next tier"),
        ([("0", "1000", "10"), ("1100", "", "6")], "a gap from"),
        ([("0", "1000", "10")], "last tier has no upper end"),
        ([("10", "", "10")], "first tier starts at"),
        ([("0", "", "10.5"), ("0.001", "", "1")], "USD"),
    ],
)
def test_bad_tiers_are_a_page_error_and_nothing_is_saved(operator_client, tiers, message):
    rule = CommissionRuleFactory(name="Platform", currency="USD", percentage_bps=1000)
    VolumeTier.objects.create(rule=rule, from_minor=0, percentage_bps=700)
    response = operator_client.post(url(rule), rule_form(rule, tiers, percentage="20"))
    assert response.status_code == 200
    assert message in response.content.decode()
    rule.refresh_from_db()
    assert rule.percentage_bps == 1000  # the rule is not saved either
    assert list(rule.tiers.values_list("percentage_bps", flat=True)) == [700]


def test_tiers_need_the_rules_currency(operator_client):
    rule = CommissionRuleFactory(name="Platform", currency="")
    response = operator_client.post(url(rule), rule_form(rule, [("0", "", "5")]))
    assert response.status_code == 200
    assert "need the rule&#x27;s currency" in response.content.decode()
    assert not VolumeTier.objects.exists()


def test_a_page_without_the_tiers_formset_leaves_the_tiers_alone(operator_client):
    rule = CommissionRuleFactory(name="Platform", currency="USD")
    VolumeTier.objects.create(rule=rule, from_minor=0, percentage_bps=700)
    data = {k: v for k, v in rule_form(rule, []).items() if not k.startswith("tiers-")}
    assert operator_client.post(url(rule), data).status_code == 302
    assert rule.tiers.count() == 1


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
