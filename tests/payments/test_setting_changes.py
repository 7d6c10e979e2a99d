"""Every change of a commission rule or payout policy is recorded: who, when, via
what, why, and each field before and after; the record cannot be edited."""

import pytest
from django.urls import reverse

from payments.models import AuditRecord, CommissionRule, PayoutPolicy
from payments.revenue.commission import commission_rule_save
from tests.factories import CommissionRuleFactory

pytestmark = pytest.mark.django_db


def test_saving_a_rule_records_the_fields_that_changed(operator):
    rule = CommissionRuleFactory(percentage_bps=1000)
    rule.percentage_bps = 1200

    commission_rule_save(rule=rule, by=operator, reason="Spring pricing", via="code")

    change = AuditRecord.objects.get()
    assert (change.target, change.action, change.actor) == (rule, "changed", operator)
    assert change.changes == {"percentage_bps": [1000, 1200]}
    assert change.reason == "Spring pricing"


def test_an_invalid_change_is_refused_and_records_nothing(operator):
    from django.core.exceptions import ValidationError

    rule = CommissionRuleFactory(percentage_bps=1000)
    rule.fixed_fee_minor = 30  # without a currency

    with pytest.raises(ValidationError):
        commission_rule_save(rule=rule, by=operator, reason="oops")
    assert not AuditRecord.objects.exists()
    rule.refresh_from_db()
    assert rule.fixed_fee_minor == 0


def test_the_admin_needs_a_reason_and_shows_the_history(operator_client, operator):
    rule = CommissionRuleFactory(percentage_bps=1000, name="Platform")
    url = reverse("admin:payments_commissionrule_change", args=[rule.pk])
    form = {
        "name": "Platform",
        "scope": "default",
        "percentage": "15",
        "fixed_fee": "",
        "currency": "",
        "active_from": "2026-01-01T00:00:00",
    }

    refused = operator_client.post(url, form)
    saved = operator_client.post(url, {**form, "change_reason": "Higher fees from the bank"})

    assert refused.status_code == 200 and "This field is required" in refused.text
    assert saved.status_code == 302
    page = operator_client.get(url).text
    assert "Higher fees from the bank" in page and "10% → 15%" in page
    assert CommissionRule.objects.get().percentage_bps == 1500
    change = AuditRecord.objects.get()
    assert (change.via, change.actor) == ("admin", operator)
    history = operator_client.get(reverse("admin:payments_auditrecord_change", args=[change.pk]))
    assert history.status_code == 200 and "Save" not in history.text


def test_the_api_records_changes_with_their_reason(operator):
    from rest_framework.test import APIClient

    from accounts.tokens import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=operator, name='t').raw}")
    created = client.post(
        reverse("api:payout-policy-list"),
        {"seller": None, "hold_days": 3, "reason": "Faster payouts"},
        format="json",
    )

    assert created.status_code == 201 and "reason" not in created.json()
    change = AuditRecord.objects.get()
    assert (change.target, change.action, change.via, change.reason) == (
        PayoutPolicy.objects.get(),
        "created",
        "api",
        "Faster payouts",
    )
    assert change.changes["hold_days"] == [None, 3]
    assert PayoutPolicy.objects.get().hold_days == 3
    assert CommissionRule.objects.count() == 0
