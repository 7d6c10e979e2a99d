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
