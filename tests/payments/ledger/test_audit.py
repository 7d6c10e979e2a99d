"""The one audit trail: services record who did what, why, through what; every history
an operator reads comes from it; and the migration that made it kept the old ones."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import reverse

from payments.admin.audit import changes_text, history_table
from payments.ledger.audit import audit_history, audit_record, audited_save
from payments.models import AuditRecord, CommissionRule, PayoutPolicy
from payments.revenue.commission import commission_rule_save
from tests.factories import CommissionRuleFactory, SellerFactory

pytestmark = pytest.mark.django_db


def test_a_record_names_its_object_actor_and_reason(operator):
    seller = SellerFactory()

    record = audit_record(
        target=seller, action="freeze", by=operator, reason="  KYC  ", via="admin"
    )

    assert (record.target, record.actor, record.reason, record.via) == (
        seller,
        operator,
        "KYC",
        "admin",
    )
    assert list(audit_history(seller)) == [record]
    assert not audit_history(SellerFactory()).exists()


def test_a_save_that_changes_nothing_records_nothing(operator):
    rule = CommissionRuleFactory(percentage_bps=1000)

    audited_save(instance=rule, by=operator, reason="no-op")

    assert not AuditRecord.objects.exists()


def test_changes_read_in_money_and_percentages_never_minor_units(operator):
    rule = CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")
    rule.percentage_bps, rule.fixed_fee_minor = 1250, 45
    audited_save(instance=rule, by=operator, reason="fees")
    policy = PayoutPolicy(seller=None, minimums={"USD": 2500, "JPY": 3000})
    audited_save(instance=policy, by=operator, reason="new")

    rule_text = changes_text(AuditRecord.objects.get(action="changed"), "USD")
    policy_text = changes_text(AuditRecord.objects.get(action="created"))

    assert "10% → 12.5%" in rule_text and "$0.30 → $0.45" in rule_text
    assert "¥3,000" in policy_text and "$25.00" in policy_text
    assert "2500" not in policy_text and "_minor" not in rule_text + policy_text


def test_the_history_table_is_one_query_whatever_its_length(
    operator, django_assert_max_num_queries
):
    rule = CommissionRuleFactory(percentage_bps=1000, currency="USD")
    for bps in range(1001, 1021):
        rule.percentage_bps = bps
        audited_save(instance=rule, by=operator, reason=f"step {bps}")
    ContentType.objects.clear_cache()
    ContentType.objects.get_for_model(CommissionRule)  # cached per process in real use

    with django_assert_max_num_queries(1):
        html = history_table(rule)

    assert html.count("<tr>") == 21 and "step 1020" in html


def test_the_trail_list_links_each_row_to_its_object(operator_client, operator):
    rule = CommissionRuleFactory(percentage_bps=1000, currency="USD")
    rule.percentage_bps = 900
    audited_save(instance=rule, by=operator, reason="cheaper")

    page = operator_client.get(reverse("admin:payments_auditrecord_changelist")).text

    assert reverse("admin:payments_commissionrule_change", args=[rule.pk]) in page
    assert "10% → 9%" in page and "cheaper" in page


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_payout_actions_and_setting_changes():
    from django.db.migrations.executor import MigrationExecutor

    before = ("payments", "0026_stripe_two_steps")
    after = ("payments", "0027_audit_trail_and_payout_arrival")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    user = old.get_model("accounts", "User").objects.create(email="op@example.com")
    seller = old.get_model("accounts", "Seller").objects.create(
        user=user, display_name="Acme", slug="acme", default_currency="USD"
    )
    payout = old.get_model("payments", "Payout").objects.create(
        seller=seller, currency="USD", amount_minor=900, period="2026-11-30"
    )
    old.get_model("payments", "PayoutAction").objects.create(
        payout=payout, actor=user, action="hold", reason="KYC"
    )
    old.get_model("payments", "PayoutAction").objects.create(
        payout=payout, actor=None, action="cancel", reason="frozen"
    )
    old.get_model("payments", "SettingChange").objects.create(
        target="commission_rule",
        target_id=7,
        changed_by=user,
        via="admin",
        reason="pricing",
        changes={"percentage_bps": [1000, 1200]},
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([after])

    rows = {
        (r.content_type.model, r.object_id, r.action, r.actor_id, r.via, r.reason)
        for r in AuditRecord.objects.select_related("content_type")
    }
    assert rows == {
        ("payout", payout.pk, "hold", user.pk, "code", "KYC"),
        ("payout", payout.pk, "cancel", None, "system", "frozen"),
        ("commissionrule", 7, "changed", user.pk, "admin", "pricing"),
    }
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


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
