"""The commission rule form in the operator console: the percentage is typed as a
percent and the fixed fee, minimum and maximum as money in the rule's currency;
a bad value is a clear form error and nothing is saved."""

import re

import pytest
from django.urls import reverse

from payments.models import AuditRecord, CommissionRule
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
