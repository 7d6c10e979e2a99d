"""Money is read-only in the admin: no change form saves, nothing is added or deleted,
even by a superuser; money moves only through actions that call a service, each
with a reason that the row's page shows with who and when."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import models
from django.urls import reverse
from django.utils import timezone

from marketplace.kernel.currencies import format_amount
from marketplace.models import DeferredTask, Order, OrderLine, SellerOrder
from marketplace.services.orders import CartItem, place_order
from payments.collection.refund_requests import refund_request_create
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import (
    AuditRecord,
    Clawback,
    Dispute,
    DisputeLine,
    LedgerAccount,
    LedgerTransaction,
    LocalAccount,
    PaymentAttempt,
    Payout,
    PayoutEntry,
    PayoutPolicy,
    PayoutRun,
    Refund,
    RefundLine,
    WebhookEvent,
)
from payments.payouts.controls import payout_hold
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.revenue.commission import commission_rule_save
from tests.factories import CommissionRuleFactory, ProductFactory, UserFactory
from tests.money_helpers import enable_payouts, pay_by_card
from tests.payments.admin.pages import problems, visible_text

pytestmark = pytest.mark.django_db

SUCCESS = "changed successfully"


@pytest.fixture
def money(run, customer, seller, other_seller):
    """A card-paid order of two sellers' lines, Acme's earnings paid out, a refund, a
    refund request, a dispute (won), and a webhook event and a deferred task (not money,
    but read-only too): one row of each, by name."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    mine = ProductFactory(seller=seller, title="Teapot", price_minor=6750, stock=2)
    theirs = ProductFactory(seller=other_seller, title="Print", price_minor=1000, stock=2)
    order = place_order(
        customer=customer, cart_items=[CartItem(mine.pk, 1), CartItem(theirs.pk, 1)]
    )
    order = pay_by_card(run, order)
    seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
    report = run(run_payouts, sellers=[seller])
    refund = refund_create(order=order, order_line=order.lines.get(title="Print"), reason="Torn")
    refund_mark_succeeded(refund=refund)
    refund.refresh_from_db()
    request = refund_request_create(
        customer=customer, order_line=order.lines.get(title="Teapot"), reason="Chipped spout"
    )
    dispute = Dispute.objects.create(
        order=order,
        processor="local",
        processor_dispute_id="dp_1",
        amount_minor=6750,
        currency="USD",
        reason="fraudulent",
        status=Dispute.Status.WON,  # closed: an open dispute would bar the refund
        closed_at=timezone.now(),
    )
    capture = LedgerTransaction.objects.get(kind=LedgerTransaction.Kind.PAYMENT_CAPTURED)
    return {
        "order": Order.objects.get(pk=order.pk),
        "attempt": PaymentAttempt.objects.get(order=order),
        "payout": Payout.objects.get(),
        "run": report.run,
        "refund": refund,
        "request": request,
        "dispute": dispute,
        "transaction": capture,
        "entry": capture.entries.filter(account__seller=seller).first(),
        "account": LedgerAccount.objects.get(seller=seller, kind="available"),
        "event": WebhookEvent.objects.create(
            processor="local", event_id="evt_1", type="payout.paid", payload="{}"
        ),
        "task": DeferredTask.objects.create(task="payments.tasks.payout_send", args=[1]),
    }


@pytest.fixture(params=["operator", "superuser"])
def staff_client(request, client, django_user_model):
    """An operator (staff in the Operators group), then a superuser."""
    if request.param == "operator":
        user = request.getfixturevalue("operator")
    else:
        user = django_user_model.objects.create_superuser(email="root@example.com", password="x")
    client.force_login(user)
    return client


def _row(obj):
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


def _altered(obj):
    """A change form POST that alters every field of ``obj``: amounts, statuses,
    relations (another seller, user or order) and dates."""
    data = {"_save": "Save"}
    for field in obj._meta.concrete_fields:
        if field.primary_key:
            continue
        value, name = getattr(obj, field.attname), field.name
        if isinstance(field, models.ForeignKey):
            other = field.related_model.objects.exclude(pk=value).values_list("pk", flat=True)
            data[name] = str(other.first() or 999_999)
        elif isinstance(field, models.BooleanField):
            if not value:
                data[name] = "on"
        elif isinstance(field, models.DateTimeField):
            data[name] = "2001-02-03 04:05:06"
            data[f"{name}_0"], data[f"{name}_1"] = "2001-02-03", "04:05:06"
        elif isinstance(field, models.IntegerField):
            data[name] = "2" if value == 1 else "1"
        elif isinstance(field, models.JSONField):
            data[name] = '{"altered": true}'
        elif field.choices:
            data[name] = next(choice for choice, _ in field.choices if choice != value)
        else:
            data[name] = "XYZ"
    return data


def _money(field):
    """What a page shows for an amount field: money in the row's currency."""

    def shown(obj):
        return format_amount(getattr(obj, field), obj.currency)

    shown.raw = field
    return shown


def _field(name):
    def shown(obj):
        return str(getattr(obj, name))

    return shown


# (url name, the row, what its page shows of it)
MONEY_PAGES = [
    ("payments_paymentattempt", "attempt", _money("amount_minor")),
    ("payments_payout", "payout", _money("amount_minor")),
    ("payments_payoutrun", "run", _field("payouts_created")),
    ("payments_refund", "refund", _money("amount_minor")),
    ("payments_refundrequest", "request", _field("reason")),
    ("payments_dispute", "dispute", _field("processor_dispute_id")),
    ("payments_ledgertransaction", "transaction", _field("idempotency_key")),
    ("payments_ledgerentry", "entry", _money("amount_minor")),
    ("payments_ledgeraccount", "account", _money("balance_minor")),
    ("marketplace_order", "order", _money("total_minor")),
]
NOT_MONEY_PAGES = [
    ("payments_webhookevent", "event", _field("event_id")),
    ("marketplace_deferredtask", "task", _field("task")),
]


@pytest.fixture
def books(run, customer, seller, other_seller, operator):
    """A row in every money model: a card-paid order of two sellers' lines at 12.5% +
    $0.30 a line, Acme paid out, a partial refund, a refund request, a dispute, a
    clawback, a payout policy with a reserve. Returns the raw amounts that must
    never be shown as they are stored."""
    rule = CommissionRuleFactory(name="Platform", percentage_bps=1000, currency="USD")
    rule.percentage_bps, rule.fixed_fee_minor = 1250, 30
    rule.minimum_minor, rule.maximum_minor = 150, 5000
    commission_rule_save(rule=rule, by=operator, reason="Card fees went up", via="admin")
    PayoutPolicy.objects.create(seller=other_seller, reserve_bps=1000)
    enable_payouts(seller)
    mine = ProductFactory(seller=seller, title="Teapot", price_minor=6750, stock=3)
    theirs = ProductFactory(seller=other_seller, title="Print", price_minor=1040, stock=3)
    order = place_order(
        customer=customer, cart_items=[CartItem(mine.pk, 1), CartItem(theirs.pk, 1)]
    )
    order = pay_by_card(run, order)
    seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
    run(run_payouts, sellers=[seller])
    refund = refund_create(
        order=order, order_line=order.lines.get(title="Print"), amount_minor=520, reason="Torn"
    )
    refund_mark_succeeded(refund=refund)
    refund_request_create(
        customer=customer, order_line=order.lines.get(title="Teapot"), reason="Chipped spout"
    )
    Dispute.objects.create(
        order=order,
        processor="local",
        processor_dispute_id="dp_1",
        amount_minor=6750,
        currency="USD",
        reason="fraudulent",
        status=Dispute.Status.WON,
        closed_at=timezone.now(),
    )
    payout = Payout.objects.get()
    Payout.objects.filter(pk=payout.pk).update(clawed_back_minor=4550)
    Clawback.objects.create(
        payout=payout,
        reason_type="refund",
        reason_id=refund.pk,
        wanted_minor=4550,
        amount_minor=4550,
        idempotency_key="clawback-test",
        status=Clawback.Status.REVERSED,
    )
    order = Order.objects.get(pk=order.pk)
    teapot = order.lines.get(title="Teapot")
    raw = {
        order.total_minor,
        order.commission_minor,
        teapot.commission_minor,
        teapot.seller_share_minor,
        payout.amount_minor,
        refund.amount_minor,
        6750,
        4550,
    }
    assert order.total_minor == 7790 and all(amount >= 100 for amount in raw)
    return raw


def admin_pages():
    """Every registered model's list, add form (the operator may not add to most) and
    the page of its first row."""
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        yield reverse("admin:{}_{}_changelist".format(*info))
        yield reverse("admin:{}_{}_add".format(*info))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            yield reverse("admin:{}_{}_change".format(*info), args=[first.pk])


def _dollars(minor):
    return f"${minor // 100:,}.{minor % 100:02d}"


@pytest.mark.parametrize(("url_name", "key", "shown"), MONEY_PAGES + NOT_MONEY_PAGES)
def test_the_change_page_shows_the_row_and_a_post_changes_nothing(
    staff_client, money, url_name, key, shown
):
    obj = money[key]
    before = _row(obj)
    url = reverse(f"admin:{url_name}_change", args=[obj.pk])

    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<div class="readonly">{shown(obj)}</div>' in html
    if hasattr(shown, "raw"):  # an amount: as money, never as stored
        assert f'<div class="readonly">{getattr(obj, shown.raw)}</div>' not in html
    assert b'name="_save"' not in page.content

    response = staff_client.post(url, _altered(obj))

    assert response.status_code == 403
    assert SUCCESS not in response.content.decode()
    assert not list(get_messages(response.wsgi_request))
    obj.refresh_from_db()
    assert _row(obj) == before


@pytest.mark.parametrize(("url_name", "key", "shown"), MONEY_PAGES + NOT_MONEY_PAGES)
def test_money_rows_cannot_be_added(staff_client, money, url_name, key, shown):
    model = type(money[key])
    count = model.objects.count()
    url = reverse(f"admin:{url_name}_add")

    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, _altered(money[key])).status_code == 403
    assert model.objects.count() == count


@pytest.mark.parametrize(("url_name", "key", "shown"), MONEY_PAGES + NOT_MONEY_PAGES[:1])
def test_money_rows_cannot_be_deleted(staff_client, money, url_name, key, shown):
    obj = money[key]
    url = reverse(f"admin:{url_name}_delete", args=[obj.pk])
    changelist = reverse(f"admin:{url_name}_changelist")

    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    bulk = staff_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("model", [PayoutEntry, RefundLine, DisputeLine, SellerOrder, OrderLine])
def test_money_rows_shown_inline_have_no_admin_of_their_own(model):
    assert not admin.site.is_registered(model)


@pytest.mark.parametrize("parent", [Payout, PayoutRun, Refund, Dispute, LedgerTransaction, Order])
def test_inlines_of_money_pages_add_change_and_delete_nothing(rf, django_user_model, parent):
    request = rf.get("/")
    request.user = django_user_model(email="root@example.com", is_staff=True, is_superuser=True)

    inlines = admin.site._registry[parent].get_inline_instances(request)

    assert inlines
    for inline in inlines:
        assert not inline.has_add_permission(request, None)
        assert not inline.has_change_permission(request, None)
        assert not inline.can_delete or not inline.has_delete_permission(request, None)


def test_a_post_with_inline_rows_changes_no_seller_order_or_line(staff_client, money):
    order = money["order"]
    seller_order, line = order.seller_orders.first(), order.lines.first()
    before = _row(seller_order), _row(line)
    data = _altered(order) | {
        "seller_orders-TOTAL_FORMS": "1",
        "seller_orders-INITIAL_FORMS": "1",
        "seller_orders-0-id": str(seller_order.pk),
        "seller_orders-0-order": str(order.pk),
        "seller_orders-0-seller_share_minor": "1",
        "seller_orders-0-status": "delivered",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "1",
        "lines-0-id": str(line.pk),
        "lines-0-order": str(order.pk),
        "lines-0-refunded_minor": "1",
    }

    response = staff_client.post(reverse("admin:marketplace_order_change", args=[order.pk]), data)

    assert response.status_code == 403
    seller_order.refresh_from_db()
    line.refresh_from_db()
    assert (_row(seller_order), _row(line)) == before


# Payout actions: each needs a reason (the bank reference for mark paid).


@pytest.fixture
def earning(seller):
    """Acme with 90.00 available: a paid 100.00 order at 10%, its hold released."""
    from tests.money_helpers import paid_order

    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    return seller


@pytest.fixture
def payout_for(run, earning, operator):
    """``payout_for(action)``: a payout in a state that ``action`` accepts."""

    def make(action):
        if action == "retry":
            account = LocalAccount.objects.filter(pk=earning.payout_account_id)
            account.update(details_submitted=False)
            run(run_payouts)
            account.update(details_submitted=True)
        elif action == "mark_paid":
            earning.bank_account_holder = "Acme Trading Ltd"
            earning.bank_account_number = "GB33BUKB20201555555555"
            earning.bank_routing_code = "BUKBGB22"
            earning.save()
            PayoutPolicy.objects.create(seller=earning, method="manual")
            run(run_payouts)
        else:  # waits for a second operator: open, not sent
            PayoutPolicy.objects.create(seller=earning, approval_thresholds={"USD": 1})
            run(run_payouts)
            if action == "release":
                payout_hold(payout=Payout.objects.get(), by=operator, reason="Address check")
        return Payout.objects.get()

    return make


VERBS = {
    "hold": "held",
    "release": "released",
    "cancel": "cancelled",
    "retry": "retried",
    "mark_paid": "marked paid",
}
PAYOUT_ACTIONS = [
    ("hold", "awaiting_approval", "held"),
    ("release", "held", "awaiting_approval"),
    ("cancel", "awaiting_approval", "cancelled"),
    ("retry", "failed", "failed"),  # a new payout pays the seller
    ("mark_paid", "scheduled", "paid"),
]


def _run_action(client, url_name, action, pks, reason):
    data = {"action": action, "_selected_action": pks}
    if reason is not None:
        data["reason"] = reason
    return client.post(reverse(f"admin:{url_name}_changelist"), data, follow=True)


def _messages(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


@pytest.mark.parametrize(("action", "before", "after"), PAYOUT_ACTIONS)
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_payout_action_without_a_reason_is_refused_and_changes_nothing(
    operator_client, payout_for, action, before, after, reason
):
    payout = payout_for(action)
    assert payout.status == before
    row, actions, payouts = _row(payout), AuditRecord.objects.count(), Payout.objects.count()

    response = _run_action(operator_client, "payments_payout", action, [payout.pk], reason)

    [(level, text)] = _messages(response)
    assert level == "error" and "Nothing was changed." in text
    assert ("bank transfer's reference" if action == "mark_paid" else "Give a reason") in text
    payout.refresh_from_db()
    assert _row(payout) == row
    assert (AuditRecord.objects.count(), Payout.objects.count()) == (actions, payouts)


@pytest.mark.parametrize(("action", "before", "after"), PAYOUT_ACTIONS)
def test_a_payout_action_with_a_reason_runs_and_the_page_shows_who_and_why(
    run, operator_client, operator, payout_for, action, before, after
):
    payout = payout_for(action)

    response = run(
        _run_action, operator_client, "payments_payout", action, [payout.pk], "Ticket 4711"
    )

    assert _messages(response) == [("info", f"1 payout(s) {VERBS[action]}.")]
    payout.refresh_from_db()
    assert payout.status == after
    recorded = payout.audit_records.filter(action=action).get()
    assert (recorded.actor, recorded.reason) == (operator, "Ticket 4711")
    if action == "retry":
        assert Payout.objects.get(period=f"retry-{payout.pk}").status == "paid"
    if action == "mark_paid":
        assert payout.bank_reference == "Ticket 4711"
    page = operator_client.get(reverse("admin:payments_payout_change", args=[payout.pk]))
    assert (
        page.context["inline_admin_formsets"][0]
        .formset.queryset.filter(action=action, reason="Ticket 4711", actor=operator)
        .exists()
    )
    assert "Ticket 4711" in page.content.decode()


def test_staff_without_the_change_permission_run_no_payout_action(client, payout_for):
    payout = payout_for("hold")
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payout"))
    client.force_login(viewer)

    page = client.get(reverse("admin:payments_payout_changelist"))
    assert page.status_code == 200
    assert "action_form" not in page.context or not page.context["action_form"]
    _run_action(client, "payments_payout", "hold", [payout.pk], "Because")

    payout.refresh_from_db()
    assert payout.status == "awaiting_approval"
    assert not payout.audit_records.exists()


# Refund requests: approving or declining, from the list's action or the row's link,
# goes through a confirmation page that needs a reason, kept on the request's page.


@pytest.fixture
def refund_request(money):
    return money["request"]


def _confirmation_page(client, refund_request, action):
    """The list's action for the one request: it leads to the confirmation page."""
    chosen = _run_action(client, "payments_refundrequest", action, [refund_request.pk], None)
    [(url, status)] = chosen.redirect_chain
    assert status == 302
    assert url == reverse("admin:payments_refundrequest_decide", args=[refund_request.pk, action])
    return chosen


def _confirm(client, page, reason):
    data = {"confirmation": page.context["form"]["confirmation"].value()}
    if reason is not None:
        data["reason"] = reason
    return client.post(page.request["PATH_INFO"], data, follow=True)


@pytest.mark.parametrize("action", ["approve", "decline"])
@pytest.mark.parametrize("reason", [None, "  "])
def test_a_refund_request_decision_without_a_reason_is_refused_and_changes_nothing(
    operator_client, refund_request, action, reason
):
    row, refunds, records = (
        _row(refund_request),
        Refund.objects.count(),
        AuditRecord.objects.count(),
    )
    page = _confirmation_page(operator_client, refund_request, action)

    response = _confirm(operator_client, page, reason)

    assert response.status_code == 200 and not response.redirect_chain
    assert response.context["form"].errors == {"reason": ["Give a reason. Nothing was changed."]}
    assert "Give a reason. Nothing was changed." in response.content.decode()
    refund_request.refresh_from_db()
    assert _row(refund_request) == row
    assert (Refund.objects.count(), AuditRecord.objects.count()) == (refunds, records)


@pytest.mark.parametrize(("action", "status"), [("approve", "approved"), ("decline", "declined")])
def test_a_refund_request_decision_records_who_when_and_why_on_its_page(
    run, operator_client, operator, refund_request, action, status
):
    refunds = Refund.objects.count()
    page = _confirmation_page(operator_client, refund_request, action)
    assert Refund.objects.count() == refunds  # the page changes nothing

    response = run(_confirm, operator_client, page, " Photo shows the chip ")

    refund_request.refresh_from_db()
    [(level, text)] = _messages(response)
    assert level == "success"
    if action == "approve":
        refund = refund_request.refund
        assert text == (
            f"{refund_request} approved: refund #{refund.pk} of "
            f"{format_amount(refund.amount_minor, refund.currency)} sent to the processor."
        )
        assert refund.status == Refund.Status.SUCCEEDED
    else:
        assert text == f"{refund_request} declined; the customer and the seller are emailed."
        assert refund_request.refund is None
    assert (refund_request.status, refund_request.decided_by, refund_request.decision_note) == (
        status,
        operator,
        "Photo shows the chip",
    )
    assert refund_request.decided_at is not None
    page = operator_client.get(
        reverse("admin:payments_refundrequest_change", args=[refund_request.pk])
    )
    html = page.content.decode()
    assert "Decision" in html
    assert "Photo shows the chip" in html and operator.email in html
    assert b'name="_save"' not in page.content


def test_a_decided_request_is_not_decided_again(run, operator_client, refund_request):
    page = _confirmation_page(operator_client, refund_request, "decline")
    run(_confirm, operator_client, page, "Out of time")
    refunds = Refund.objects.count()

    response = operator_client.post(
        reverse("admin:payments_refundrequest_changelist"),
        {"action": "approve", "_selected_action": [refund_request.pk]},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("admin:payments_refundrequest_changelist")
    assert _messages(response) == [
        ("warning", f"{refund_request} was declined already. Nothing was changed.")
    ]
    refund_request.refresh_from_db()
    assert (refund_request.status, refund_request.decision_note) == ("declined", "Out of time")
    assert Refund.objects.count() == refunds


def test_staff_without_the_change_permission_decide_no_refund_request(client, refund_request):
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_refundrequest"))
    client.force_login(viewer)
    row, records = _row(refund_request), AuditRecord.objects.count()

    listing = client.get(reverse("admin:payments_refundrequest_changelist"))
    assert listing.status_code == 200
    assert "action_form" not in listing.context or not listing.context["action_form"]
    chosen = _run_action(client, "payments_refundrequest", "approve", [refund_request.pk], "x")
    decide = reverse("admin:payments_refundrequest_decide", args=[refund_request.pk, "approve"])
    assert decide not in [url for url, _ in chosen.redirect_chain]
    assert client.post(decide, {"reason": "Because"}).status_code == 403

    refund_request.refresh_from_db()
    assert _row(refund_request) == row
    assert AuditRecord.objects.count() == records


def test_no_list_or_page_of_the_admin_shows_a_minor_unit(operator_client, books):
    shown, refused = {}, []
    for url in admin_pages():
        response = operator_client.get(url)
        if response.status_code in (302, 403):  # a page the operator may not see
            refused.append(url)
            continue
        assert response.status_code == 200, url
        found = problems(visible_text(response.content.decode()), books)
        if found:
            shown[url] = sorted(set(found))

    assert shown == {}, "\n".join(f"{url}: {found}" for url, found in shown.items())
    # The money pages were all seen.
    for name in ("payout", "refund", "dispute", "clawback", "ledgerentry", "commissionrule"):
        seen = [url for url in refused if f"/payments/{name}/" in url and "/add/" not in url]
        assert not seen, seen


def test_a_read_only_page_shows_each_amount_as_money_under_its_own_name(operator_client, books):
    payout = Payout.objects.get()

    page = operator_client.get(reverse("admin:payments_payout_change", args=[payout.pk]))

    text = visible_text(page.content.decode())
    assert f"Amount: {_dollars(payout.amount_minor)}" in text
    assert "Clawed back: $45.50" in text
    assert "Reserve: $0.00" in text


def test_a_clawback_page_shows_its_amounts_in_its_payouts_currency(operator_client, books):
    clawback = Clawback.objects.get()

    page = operator_client.get(reverse("admin:payments_clawback_change", args=[clawback.pk]))

    text = visible_text(page.content.decode())
    assert "Wanted: $45.50" in text and "Taken back: $45.50" in text
    assert text.count("$45.50") == 2  # shown once each, not again as "amount"


def test_the_rule_list_shows_percent_and_money(operator_client, books):
    page = operator_client.get(reverse("admin:payments_commissionrule_changelist"))

    text = visible_text(page.content.decode())
    assert "12.5% $0.30 $1.50 $50.00 USD" in text
