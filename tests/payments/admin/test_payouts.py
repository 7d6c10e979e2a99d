"""What operators and sellers see of a payout's processor steps and clawbacks.

Operators: the payout's page lists its steps (the transfer, each bank payout attempt)
and its clawbacks, read-only; the list filters the payouts that need attention; an
action sends one again after the operator checked the processor, with a reason; the
clawback list is read-only. Sellers: the payout's page says how it was paid, in words.
"""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import AuditRecord, Clawback, Payout, PayoutStep
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_resume, payout_send
from payments.processors.local import LocalProcessor
from tests.factories import CommissionRuleFactory, SellerFactory, UserFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db

ATTENTION = "Not through after 72 hours (bank payout; last answer: closed). Check, then retry."
CLOSED = "The bank account was closed (simulated)."


@pytest.fixture
def order(seller):
    """Acme's 100.00 sale at 10%, its hold released: 90.00 available."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    return order


@pytest.fixture
def stuck(run, settings, order):
    """Acme's payout, transferred, its bank payout refused, then a 20.00 refund taken
    back from its transfer; stopped for an operator ("needs attention")."""
    settings.PAYMENTS_LOCAL_FAULTS = {"payout_create": "refused"}
    run(run_payouts)
    settings.PAYMENTS_LOCAL_FAULTS = {}
    refund = refund_create(order=order, amount_minor=2000, reason="Scratched")
    run(refund_mark_succeeded, refund=refund)
    payout = Payout.objects.get()
    Payout.objects.filter(pk=payout.pk).update(attention_reason=ATTENTION)
    payout.refresh_from_db()
    return payout


def _change_page(client, payout):
    return client.get(reverse("admin:payments_payout_change", args=[payout.pk]))


def _action(client, action, payouts, reason):
    data = {"action": action, "_selected_action": [p.pk for p in payouts]}
    if reason is not None:
        data["reason"] = reason
    return client.post(reverse("admin:payments_payout_changelist"), data, follow=True)


def _messages(response):
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


# --- The payout's admin page -------------------------------------------------------------------


def test_the_story_so_far(stuck):
    """What the other tests build on: transferred, bank payout refused, 20.00 less 10%
    commission (18.00) taken back from the transfer, waiting for an operator."""
    assert stuck.status == Payout.Status.TRANSFERRED
    assert [(s.kind, s.outcome) for s in stuck.steps.order_by("pk")] == [
        ("transfer", "succeeded"),
        ("bank_payout", "refused"),
    ]
    clawback = stuck.clawbacks.get()
    assert (clawback.status, clawback.amount_minor) == (Clawback.Status.REVERSED, 1800)
    assert stuck.bank_amount_minor == 7200


def test_the_payout_page_shows_its_steps_clawbacks_and_why_it_needs_attention(
    operator_client, stuck
):
    response = _change_page(operator_client, stuck)

    assert response.status_code == 200
    formsets = {f.opts.model: f.formset for f in response.context["inline_admin_formsets"]}
    assert formsets[PayoutStep].queryset.count() == 2
    assert formsets[Clawback].queryset.count() == 1
    html = response.content.decode()
    transfer = stuck.steps.get(kind="transfer")
    clawback = stuck.clawbacks.get()
    assert "Processor steps" in html and "Clawbacks" in html
    assert transfer.processor_object_id in html and "$90.00" in html
    assert "Bank payout" in html and "Refused by the processor" in html and CLOSED in html
    assert clawback.processor_reversal_id in html and "$18.00" in html and "Taken back" in html
    refund_url = reverse("admin:payments_refund_change", args=[clawback.reason_id])
    assert f'<a href="{refund_url}">refund #{clawback.reason_id}</a>' in html
    assert "Needs attention" in html and ATTENTION in html
    assert b'name="_save"' not in response.content


def test_a_payout_that_needs_no_attention_has_no_attention_section(operator_client, run, order):
    run(run_payouts)
    payout = Payout.objects.get()

    html = _change_page(operator_client, payout).content.decode()

    assert payout.status == Payout.Status.PAID
    assert "Needs attention" not in html and "Processor steps" in html


def test_the_needs_attention_filter(operator_client, run, stuck):
    other = enable_payouts(SellerFactory())
    paid_order([(other, 5000, 1)])
    seller_order_hold_release(seller_order=other.seller_orders.get())
    run(run_payouts, sellers=[other])
    fine = Payout.objects.get(seller=other)
    url = reverse("admin:payments_payout_changelist")

    def listed(query):
        response = operator_client.get(url + query)
        assert response.status_code == 200
        return {payout.pk for payout in response.context["cl"].result_list}

    assert listed("?needs_attention=yes") == {stuck.pk}
    assert listed("?needs_attention=no") == {fine.pk}
    assert listed("") == {stuck.pk, fine.pk}
    assert "needs attention" in operator_client.get(url).content.decode().lower()


@pytest.mark.parametrize("field", ["processor_transfer_id", "processor_payout_id"])
def test_payouts_are_found_by_their_processor_ids(operator_client, run, order, field):
    run(run_payouts)
    payout = Payout.objects.get()
    other = Payout.objects.create(
        seller=SellerFactory(), currency="USD", amount_minor=100, period="other"
    )

    response = operator_client.get(
        reverse("admin:payments_payout_changelist"), {"q": getattr(payout, field)}
    )

    assert getattr(payout, field) and not getattr(other, field)
    assert [p.pk for p in response.context["cl"].result_list] == [payout.pk]


def test_an_earlier_bank_payout_attempt_finds_its_payout(operator_client, stuck, run):
    """The payout keeps its latest bank payout's id; an earlier one is found by its step."""
    run(_action, operator_client, "resume", [stuck], "Bank details fixed")
    first = stuck.steps.get(kind="bank_payout", attempt=2)
    Payout.objects.filter(pk=stuck.pk).update(processor_payout_id="po_later")

    response = operator_client.get(
        reverse("admin:payments_payout_changelist"), {"q": first.processor_object_id}
    )

    assert [p.pk for p in response.context["cl"].result_list] == [stuck.pk]


# --- Sending again after checking the processor -------------------------------------------------


def test_send_again_records_who_and_why_and_calls_the_service(
    operator_client, operator, run, stuck, monkeypatch
):
    from payments.admin import payouts as payout_admin

    calls = []
    service = payout_admin.payout_resume

    def spy(**kwargs):
        calls.append(kwargs)
        return service(**kwargs)

    monkeypatch.setattr(payout_admin, "payout_resume", spy)

    response = run(_action, operator_client, "resume", [stuck], "Checked the dashboard")

    assert _messages(response) == [("info", "1 payout(s) sent again.")]
    assert calls == [
        {"payout": stuck, "by": operator, "reason": "Checked the dashboard", "via": "admin"}
    ]
    recorded = AuditRecord.objects.get(payout=stuck)
    assert (recorded.action, recorded.actor, recorded.reason, recorded.via) == (
        "resume",
        operator,
        "Checked the dashboard",
        "admin",
    )
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attention_reason) == (Payout.Status.PAID, "")
    bank = stuck.steps.get(kind="bank_payout", attempt=2)
    assert (bank.amount_minor, bank.object_status) == (7200, "paid")
    page = _change_page(operator_client, stuck).content.decode()
    assert "Checked the dashboard" in page and "Needs attention" not in page


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_send_again_without_a_reason_changes_nothing(operator_client, stuck, reason):
    response = _action(operator_client, "resume", [stuck], reason)

    [(level, text)] = _messages(response)
    assert level == "error" and "Give a reason" in text and "Nothing was changed." in text
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attention_reason) == (Payout.Status.TRANSFERRED, ATTENTION)
    assert not AuditRecord.objects.exists()


def test_send_again_refuses_a_payout_that_is_not_waiting_for_an_operator(
    operator_client, run, stuck
):
    Payout.objects.filter(pk=stuck.pk).update(attention_reason="")

    response = run(_action, operator_client, "resume", [stuck], "Just in case")

    assert _messages(response) == [
        ("error", f"{stuck}: Payout #{stuck.pk} is not waiting for an operator."),
        ("info", "0 payout(s) sent again."),
    ]
    assert not AuditRecord.objects.exists()
    assert stuck.steps.count() == 2


# --- The clawback list ---------------------------------------------------------------------------


def test_clawbacks_are_listed_and_filtered_read_only(operator_client, stuck):
    clawback = stuck.clawbacks.get()
    url = reverse("admin:payments_clawback_changelist")

    page = operator_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "$18.00" in html and "refund #" in html and clawback.processor_reversal_id in html
    for query, shown in [
        ({"status__exact": "reversed"}, [clawback.pk]),
        ({"status__exact": "failed"}, []),
        ({"reason_type__exact": "refund"}, [clawback.pk]),
        ({"reason_type__exact": "dispute"}, []),
    ]:
        listed = operator_client.get(url, query).context["cl"].result_list
        assert [c.pk for c in listed] == shown, query

    change = reverse("admin:payments_clawback_change", args=[clawback.pk])
    page = operator_client.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b"$18.00" in page.content


def test_clawbacks_cannot_be_added_changed_or_deleted(operator_client, stuck):
    clawback = stuck.clawbacks.get()
    before = Clawback.objects.values().get(pk=clawback.pk)
    change = reverse("admin:payments_clawback_change", args=[clawback.pk])
    delete = reverse("admin:payments_clawback_delete", args=[clawback.pk])
    add = reverse("admin:payments_clawback_add")

    assert operator_client.get(add).status_code == 403
    assert operator_client.post(add, {"wanted_minor": "1"}).status_code == 403
    altered = {"amount_minor": "1", "status": "failed", "note": "x", "_save": "Save"}
    assert operator_client.post(change, altered).status_code == 403
    assert operator_client.get(delete).status_code == 403
    assert operator_client.post(delete, {"post": "yes"}).status_code == 403
    operator_client.post(
        reverse("admin:payments_clawback_changelist"),
        {"action": "delete_selected", "_selected_action": [clawback.pk], "post": "yes"},
    )
    assert Clawback.objects.values().get(pk=clawback.pk) == before


# --- The seller's payout page --------------------------------------------------------------------


def _seller_page(client, payout):
    response = client.get(reverse("marketplace:seller_payout_detail", args=[payout.pk]))
    assert response.status_code == 200
    return response


def _resume(payout):
    return payout_resume(payout=payout, by=UserFactory(), reason="Bank details fixed")


def test_the_seller_sees_how_their_payout_was_paid_in_words(seller_client, run, stuck):
    """Refused once, sent again and paid, returned by the bank, paid out again."""
    run(_resume, stuck)
    paid = stuck.steps.get(kind="bank_payout", attempt=2)
    run(LocalProcessor().payout_return, payout_id=paid.processor_object_id)
    run(payout_send, payout=stuck)  # pays out again from the seller's payout account
    stuck.refresh_from_db()
    assert stuck.status == Payout.Status.PAID

    response = _seller_page(seller_client, stuck)

    how = response.context["how_paid"]
    assert (how.transfer.amount_minor, how.transfer.at) == (9000, stuck.steps.first().finished_at)
    assert [(b.amount_minor, b.status) for b in how.bank_payouts] == [
        (9000, f"Refused: {CLOSED}"),
        (7200, "Returned by your bank: The bank returned the payout."),
        (7200, "Paid to your bank"),
    ]
    clawback = stuck.clawbacks.get()
    assert [(t.amount_minor, t.text) for t in how.taken_back] == [
        (1800, f"taken back for refund #{clawback.reason_id}")
    ]
    html = response.content.decode()
    assert "How it was paid" in html and "<caption>" in html
    assert "To your payout account" in html and "$90.00" in html
    assert f"Refused: {CLOSED}" in html and "Paid to your bank" in html
    assert "Returned by your bank: The bank returned the payout." in html
    assert f"$18.00 taken back for refund #{clawback.reason_id}" in html
    last = stuck.steps.filter(kind="bank_payout").last()
    assert f"<small>Payout {last.processor_object_id}</small>" in html
    for internal in (stuck.processor_transfer_id, clawback.processor_reversal_id):
        assert internal not in html


def test_a_seller_sees_a_payout_waiting_in_their_payout_account(seller_client, stuck):
    stuck.steps.filter(kind="bank_payout").delete()
    Payout.objects.filter(pk=stuck.pk).update(failure_reason="")

    detail = _seller_page(seller_client, stuck).content.decode()
    listing = seller_client.get(reverse("marketplace:seller_payouts")).content.decode()

    assert '<span class="badge">In your payout account</span>' in detail
    assert "Waiting in your payout account" in detail
    assert '<span class="badge">In your payout account</span>' in listing
    assert "processor account" not in detail + listing


def test_a_bank_payout_on_its_way_and_a_lost_dispute(seller_client, run, order):
    run(run_payouts)
    payout = Payout.objects.get()
    PayoutStep.objects.filter(payout=payout, kind="bank_payout").update(object_status="in_transit")
    Clawback.objects.create(
        payout=payout,
        reason_type="dispute",
        reason_id=1,
        wanted_minor=500,
        amount_minor=500,
        status=Clawback.Status.REVERSED,
        idempotency_key="clawback-dispute-1",
    )

    html = _seller_page(seller_client, payout).content.decode()

    assert "On its way to your bank" in html
    assert "$5.00 taken back for a lost dispute" in html


def test_a_payout_not_sent_yet_says_so(seller_client, seller):
    payout = Payout.objects.create(seller=seller, currency="USD", amount_minor=500, period="p")

    html = _seller_page(seller_client, payout).content.decode()

    assert "How it was paid" in html and "Not sent yet." in html
