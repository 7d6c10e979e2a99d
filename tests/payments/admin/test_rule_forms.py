"""The commission rule form in the operator console: the percentage is typed as a
percent and the fixed fee, minimum and maximum as money in the rule's currency;
a bad value is a clear form error and nothing is saved."""

import re

import pytest
from django.urls import reverse

from payments.models import AuditRecord, CommissionRule, VolumeTier
from tests.factories import CommissionRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule():
    return CommissionRuleFactory(
        name="Platform",
        percentage_bps=1250,
        fixed_fee_minor=30,
        minimum_minor=150,
        maximum_minor=5000,
        currency="USD",
    )


def _url(rule):
    return reverse("admin:payments_commissionrule_change", args=[rule.pk])


def _form(rule, **changes):
    data = {
        "name": rule.name,
        "scope": "default",
        "percentage": "12.5",
        "currency": "USD",
        "fixed_fee": "0.30",
        "minimum": "1.50",
        "maximum": "50.00",
        "active_from": "2026-01-01T00:00:00",
        "change_reason": "New card fees",
    }
    return data | changes


def _stored(rule):
    rule.refresh_from_db()
    return (
        rule.percentage_bps,
        rule.fixed_fee_minor,
        rule.minimum_minor,
        rule.maximum_minor,
        rule.currency,
    )


def _errors(response):
    return [str(error) for field in response.context["adminform"].form for error in field.errors]


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


def test_the_form_shows_the_rule_in_percent_and_money(operator_client, rule):
    page = operator_client.get(_url(rule))

    form = page.context["adminform"].form
    shown = [str(form[name].value()) for name in ("percentage", "fixed_fee", "minimum", "maximum")]
    assert shown == ["12.5", "0.30", "1.50", "50.00"]
    html = page.content.decode()
    for label in ("Percentage (%)", "Fixed fee per line", "Minimum per line", "Maximum per line"):
        assert re.search(rf"<label[^>]*>{re.escape(label)}:</label>", html), label
    assert "minor" not in re.sub(r"<[^>]+>", " ", html).lower()


def test_an_operator_saves_a_percent_and_amounts_and_the_history_keeps_why(
    operator_client, operator, rule
):
    response = operator_client.post(
        _url(rule), _form(rule, percentage="12.25", fixed_fee="0.35", minimum="", maximum="40")
    )

    assert response.status_code == 302
    assert _stored(rule) == (1225, 35, None, 4000, "USD")
    change = AuditRecord.objects.get()
    assert (change.actor, change.reason, change.via) == (operator, "New card fees", "admin")


def test_yen_amounts_are_whole_yen(operator_client, rule):
    saved = operator_client.post(
        _url(rule), _form(rule, currency="JPY", fixed_fee="30", minimum="100", maximum="5,000")
    )
    assert saved.status_code == 302
    assert _stored(rule) == (1250, 30, 100, 5000, "JPY")

    refused = operator_client.post(
        _url(rule), _form(rule, currency="JPY", fixed_fee="30.5", minimum="100", maximum="5000")
    )

    assert refused.status_code == 200
    assert _errors(refused) == ["JPY amounts have no decimal places."]
    assert _stored(rule) == (1250, 30, 100, 5000, "JPY")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"percentage": "12.345"}, "Enter the percentage with at most two decimals, e.g. 12.25."),
        ({"percentage": "101"}, "The percentage cannot be more than 100."),
        ({"percentage": "-1"}, "The percentage cannot be negative."),
        ({"percentage": "ten"}, "Enter a percentage such as 10 or 12.5."),
        ({"percentage": ""}, "Enter a percentage, e.g. 10 (0 for none)."),
        ({"fixed_fee": "0.305"}, "USD amounts have at most 2 decimal places."),
        ({"fixed_fee": "-1"}, "USD: The amount cannot be negative."),
        ({"minimum": "abc"}, "USD: Enter an amount such as 12.50."),
        # A decimal comma is refused, not read as a thousands separator (30.00 a line).
        (
            {"fixed_fee": "0,30"},
            "USD: Use a point before the decimals (12.50) and commas only between thousands "
            "(1,250.50).",
        ),
        (
            {"currency": "", "fixed_fee": "0.30"},
            "Choose the rule's currency: a fixed fee, minimum or maximum needs one.",
        ),
    ],
)
def test_a_bad_value_is_a_clear_form_error_and_nothing_is_saved(
    operator_client, rule, changes, message
):
    before = _stored(rule)

    response = operator_client.post(_url(rule), _form(rule, **changes))

    assert response.status_code == 200
    assert message in _errors(response)
    assert _stored(rule) == before
    assert not AuditRecord.objects.exists()


def test_the_rules_own_checks_run_on_the_converted_amounts(operator_client, rule):
    before = _stored(rule)

    response = operator_client.post(_url(rule), _form(rule, minimum="60", maximum="50"))

    assert response.status_code == 200
    assert "The minimum cannot be more than the maximum." in response.content.decode()
    assert _stored(rule) == before


def test_a_change_needs_a_reason(operator_client, rule):
    before = _stored(rule)

    response = operator_client.post(_url(rule), _form(rule, percentage="20", change_reason=""))

    assert response.status_code == 200
    assert _stored(rule) == before


def test_the_preview_follows_the_saved_percentage(operator_client):
    rule = CommissionRuleFactory(name="Platform 10%", percentage_bps=1000)
    assert (
        "On a $49.99 line: commission $5.00, seller $44.99"
        in operator_client.get(_url(rule)).content.decode()
    )

    operator_client.post(
        _url(rule),
        {
            "name": "Platform 10%",
            "scope": "default",
            "percentage": "12",
            "currency": "",
            "active_from": "2026-01-01T00:00:00",
            "change_reason": "Card fees went up",
        },
    )

    assert CommissionRule.objects.get().percentage_bps == 1200
    page = operator_client.get(_url(rule)).content.decode()
    assert "On a $49.99 line: commission $6.00, seller $43.99" in page


def test_a_new_rule_form_starts_at_zero_percent_with_no_amounts(operator_client):
    page = operator_client.get(reverse("admin:payments_commissionrule_add"))

    form = page.context["adminform"].form
    assert str(form["percentage"].value()) == "0"
    assert [form[name].value() for name in ("fixed_fee", "minimum", "maximum")] == ["", "", ""]


def test_the_preview_of_a_yen_rule_uses_whole_yen_lines(operator_client):
    rule = CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="JPY")

    page = operator_client.get(_url(rule)).content.decode()

    assert "On a ¥4,999 line: commission ¥530, seller ¥4,469" in page


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
