"""A whole day on Stripe Connect, against the strict stateful fake (``FakeStripe``).

Two sellers onboard (transfers-only Express accounts), a customer pays, the payout
run transfers and pays out, one bank refuses, a refund comes after the payout, a paid
payout is returned by the bank, Stripe rate-limits, an answer is lost and its key
expires, a Connect event is never delivered; then everything is paid, once. The
money is proven from the outside: what the fake (Stripe) holds for the platform and
for each connected account, what each seller got, what the customer got back.

``STRIPE_DAY_REQUESTS=1 pytest -s`` prints the requests the day sends, in order.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Seller
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.onboarding import seller_onboarding_start
from payments.collection.refunds import refund_create, refund_submit
from payments.collection.webhooks import webhooks_backfill
from payments.ledger.balances import seller_balance
from payments.models import Clawback, LedgerAccount, Payout, PayoutStep
from payments.payouts.holds import holds_release_due
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_resume, payouts_sweep
from payments.processors.stripe.client import MAX_NETWORK_RETRIES
from tests.factories import CommissionRuleFactory, ProductFactory, UserFactory
from tests.payments.processors.stripe_server import FakeStripe, use_fake_stripe

pytestmark = pytest.mark.django_db
Status = Payout.Status


@pytest.fixture
def server(settings, monkeypatch) -> FakeStripe:
    """Stripe is the processor, and Stripe is the strict fake."""
    settings.PAYMENTS_HOLD_DAYS = 0
    settings.ADMINS = [("Operators", "ops@example.com")]
    return use_fake_stripe(settings, monkeypatch, now=time.time())


class Webhooks:
    """Stripe's deliveries: every event not delivered yet, in order, to the endpoint it
    belongs to (Connect events to the Connect endpoint)."""

    def __init__(self, client, run, server: FakeStripe) -> None:
        self.client, self.run, self.server, self.done = client, run, server, 0

    def deliver(self, *, lose: tuple[str, ...] = ()) -> None:
        while self.done < len(self.server.events):
            event = self.server.events[self.done]
            self.done += 1
            if event["type"] in lose:
                continue  # never reaches us (the backfill must find it)
            endpoint = "connect" if event.get("account") else "platform"
            payload, headers = self.server.signed_delivery(event, endpoint)
            name = "payments:webhook_connect" if endpoint == "connect" else "payments:webhook"
            response = self.run(
                self.client.post,
                reverse(name, kwargs={"processor": "stripe"}),
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            )
            assert response.status_code == 200, (event["type"], response.content)


def onboard(run, webhooks: Webhooks, server: FakeStripe, seller: Seller) -> str:
    seller_onboarding_start(seller=seller, refresh_url="https://m/r", return_url="https://m/d")
    seller.refresh_from_db()
    assert seller.payout_status == "onboarding"
    server.complete_onboarding(seller.payout_account_id)
    webhooks.deliver()
    seller.refresh_from_db()
    return seller.payout_account_id


def pay(run, webhooks: Webhooks, server: FakeStripe, cart, customer):
    order = place_order(customer=customer, cart_items=cart)
    attempt = run(payment_start, order=order)
    server.succeed_payment(attempt.processor_payment_id, fee=0)
    webhooks.deliver()
    order.refresh_from_db()
    assert order.status == "paid"
    run(holds_release_due)
    return order


def due_now(payout: Payout) -> None:
    """Let the payout's backoff pass (the sweeper runs every few minutes)."""
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())


def ledger(kind: str, seller: Seller | None = None) -> int:
    accounts = LedgerAccount.objects.filter(kind=kind, currency="USD", seller=seller)
    account = accounts.with_balance().first()
    return account.balance if account else 0


def transfers_of(server: FakeStripe, payout: Payout) -> list[dict]:
    return [t for t in server.objects("transfer") if t["transfer_group"] == f"payout-{payout.pk}"]


def test_a_day_on_stripe_connect_pays_every_obligation_once(
    client, run, server, seller, other_seller
):
    CommissionRuleFactory(percentage_bps=1000)
    webhooks = Webhooks(client, run, server)
    customer = UserFactory()

    # 1. Two sellers onboard: transfers-only accounts are enabled (finding 2).
    acct_a = onboard(run, webhooks, server, seller)
    acct_b = onboard(run, webhooks, server, other_seller)
    assert server.get(acct_a)["charges_enabled"] is False
    assert {s.payout_status for s in Seller.objects.all()} == {"enabled"}

    # 2. A customer pays 100.00 to A and 60.00 to B.
    shoe = ProductFactory(seller=seller, price_minor=10000, stock=5)
    hat = ProductFactory(seller=other_seller, price_minor=6000, stock=5)
    order = pay(run, webhooks, server, [CartItem(shoe.pk, 1), CartItem(hat.pk, 1)], customer)
    assert server.available("usd") == 16000

    # 3. The run: transfers never carry an empty parameter (finding 1); B's bank refuses
    #    the bank payout, which leaves B's money in B's account, not available (finding 3).
    server.refuse_payouts(acct_b, code="account_closed", message="The bank account is closed.")
    run(run_payouts)
    payout_a = Payout.objects.get(seller=seller)
    payout_b = Payout.objects.get(seller=other_seller)
    assert (payout_a.amount_minor, payout_b.amount_minor) == (9000, 5400)
    assert payout_a.status == Status.IN_TRANSIT
    assert payout_b.status == Status.TRANSFERRED and "closed" in payout_b.failure_reason
    assert all("source_transaction" not in r.params for r in server.requests)
    assert server.available("usd", account=acct_b) == 5400
    assert seller_balance(seller=other_seller, currency="USD").available == 0
    po_a = payout_a.steps.get(kind="bank_payout").processor_object_id
    server.payout_paid(po_a)
    webhooks.deliver()
    payout_a.refresh_from_db()
    assert payout_a.status == Status.PAID
    # The bank account's last four digits and the arrival date, as Stripe answered.
    assert payout_a.bank_last4 == "6789"
    assert payout_a.arrival_on is not None and payout_a.arrival_on >= payout_a.created_at.date()

    # 4. Refunds after the payout (finding 5): B's part is taken back from B's account,
    #    which still holds it; A's was paid to A's bank, so it stays A's debt.
    line_a, line_b = order.lines.order_by("pk")
    for line in (line_a, line_b):
        run(refund_submit, refund=refund_create(order=order, order_line=line, amount_minor=2000))
    webhooks.deliver()
    claw_a = Clawback.objects.get(payout=payout_a)
    claw_b = Clawback.objects.get(payout=payout_b)
    assert (claw_a.status, claw_a.amount_minor) == ("nothing_held", 0)
    assert (claw_b.status, claw_b.amount_minor) == ("reversed", 1800)  # B's 90 %
    assert server.available("usd", account=acct_b) == 3600
    assert seller_balance(seller=seller, currency="USD").available == -1800  # A owes it
    assert seller_balance(seller=other_seller, currency="USD").available == 0

    # 5. A's bank returns the paid payout (finding 6): the money is back in A's account,
    #    the paid posting reversed, A and the operators told.
    server.payout_failed(po_a, code="account_closed", message="The bank returned it.")
    webhooks.deliver()
    payout_a.refresh_from_db()
    assert payout_a.status == Status.TRANSFERRED and "Returned" in payout_a.failure_reason
    assert seller_balance(seller=seller, currency="USD").paid_out == 0
    assert any("returned" in m.subject for m in mail.outbox if "ops@example.com" in m.to)

    # 6. The next run sends both bank payouts again, from the connected accounts, with
    #    no transfer. Stripe rate-limits the first (429): a later attempt, a new key.
    server.allow_payouts(acct_b)
    server.fail_next("POST", "/v1/payouts", status=429)
    run(run_payouts)
    payout_a.refresh_from_db()
    payout_b.refresh_from_db()
    assert payout_a.status == Status.TRANSFERRED and payout_a.next_attempt_at
    assert payout_b.status == Status.IN_TRANSIT
    assert payout_b.steps.filter(kind="bank_payout").last().amount_minor == 3600  # less clawed
    due_now(payout_a)
    run(payouts_sweep)
    payout_a.refresh_from_db()
    assert payout_a.status == Status.IN_TRANSIT
    keys = list(payout_a.steps.filter(kind="bank_payout").values_list("idempotency_key", flat=True))
    assert keys == [f"payout-{payout_a.pk}-bank-{n}" for n in (1, 2, 3)]

    # 7. A's payout.paid arrives; B's is never delivered (finding 7): the backfill lists
    #    B's account's events with its Stripe-Account header.
    payout_a.refresh_from_db()
    payout_b.refresh_from_db()
    server.payout_paid(payout_a.processor_payout_id)
    webhooks.deliver()
    server.payout_paid(payout_b.processor_payout_id)
    webhooks.deliver(lose=("payout.paid",))
    payout_b.refresh_from_db()
    assert payout_b.status == Status.IN_TRANSIT
    assert run(webhooks_backfill, since=timezone.now() - timedelta(days=1)) >= 1
    payout_a.refresh_from_db()
    payout_b.refresh_from_db()
    assert (payout_a.status, payout_b.status) == (Status.PAID, Status.PAID)

    # 8. A second sale to A; its transfer's answer is lost (a timeout after Stripe did
    #    it), retries fail all day, Stripe forgets the key after 24 h (finding 4): the
    #    payout waits for an operator, who resumes it; the look-up adopts the transfer.
    order2 = pay(run, webhooks, server, [CartItem(shoe.pk, 1)], customer)
    # Stripe does it, and the answer is lost on every one of the SDK's own retries.
    server.fail_after_next("POST", "/v1/transfers", times=MAX_NETWORK_RETRIES + 1)
    run(run_payouts, sellers=[seller])
    second = Payout.objects.filter(seller=seller).exclude(pk=payout_a.pk).get()
    assert second.status == Status.SENDING and len(transfers_of(server, second)) == 1
    server.advance(25 * 3600)
    Payout.objects.filter(pk=second.pk).update(
        attempts_since=timezone.now() - timedelta(hours=24), next_attempt_at=timezone.now()
    )
    run(payouts_sweep)
    second.refresh_from_db()
    assert second.attention_reason and second.status == Status.SENDING
    assert any("needs attention" in m.subject for m in mail.outbox)
    run(payout_resume, payout=second, by=UserFactory(is_staff=True), reason="Checked Stripe")
    second.refresh_from_db()
    assert second.status == Status.IN_TRANSIT
    assert len(transfers_of(server, second)) == 1
    assert second.steps.filter(kind="transfer", outcome="adopted").exists()

    server.payout_paid(second.processor_payout_id)
    webhooks.deliver()
    second.refresh_from_db()
    assert second.status == Status.PAID

    # --- Every obligation once, proven from the outside -------------------------------
    payouts = list(Payout.objects.order_by("pk"))
    assert {p.status for p in payouts} == {Status.PAID}
    for payout in payouts:
        assert len(transfers_of(server, payout)) == 1, payout  # one transfer each
    reversals = [
        r for t in server.objects("transfer") for r in server.get(t["id"])["reversals"]["data"]
    ]
    reversed_ = Clawback.objects.filter(status="reversed")
    assert sorted(r["amount"] for r in reversals) == sorted(c.amount_minor for c in reversed_)
    # What Stripe holds: the platform's balance is the ledger's processor cash, each
    # connected account is empty and the ledger holds nothing in them either.
    assert server.available("usd") == ledger("processor")
    assert server.available("usd", account=acct_a) == server.available("usd", account=acct_b) == 0
    assert ledger("connected") == 0
    # What each seller earned and was paid: A 90 + 90 earned, 18 refunded (a debt the
    # next sale nets: the second payout paid 90 - 18), B 54 earned, 18 refunded.
    a, b = (seller_balance(seller=s, currency="USD") for s in (seller, other_seller))
    paid_to_bank = {
        s: sum(
            st.amount_minor
            for st in PayoutStep.objects.filter(
                payout__seller=s, kind="bank_payout", object_status="paid"
            )
        )
        for s in (seller, other_seller)
    }
    assert (a.paid_out, a.available, paid_to_bank[seller]) == (16200, 0, 16200)
    assert (b.paid_out, b.available, paid_to_bank[other_seller]) == (3600, 0, 3600)
    # What the customer paid and got back.
    paid = sum(p["amount"] for p in server.objects("payment_intent"))
    refunded = sum(r["amount"] for r in server.objects("refund"))
    assert (paid, refunded) == (order.total_minor + order2.total_minor, 4000)
    assert ledger_check().ok, ledger_check().problems

    if os.environ.get("STRIPE_DAY_REQUESTS"):
        for n, request in enumerate(server.requests, 1):
            account = request.headers.get("Stripe-Account", "")
            key = request.headers.get("Idempotency-Key", "")
            print(f"{n:3} {request.method:4} {request.path} {account} {key}")
