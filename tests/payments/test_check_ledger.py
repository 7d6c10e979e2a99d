import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from marketplace.models import OrderLine, SellerOrder
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import LedgerAccount, Refund
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 2), (other_seller, 700, 1)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=500))
    return order


def test_a_consistent_ledger_passes(books, capsys):
    call_command("check_ledger")

    out = capsys.readouterr().out
    assert "1 paid orders" in out
    assert "The ledger is consistent." in out


def test_an_empty_ledger_passes(db, capsys):
    call_command("check_ledger")

    assert "The ledger is consistent." in capsys.readouterr().out


def test_a_running_balance_that_drifted_is_reported(books, seller, capsys):
    # A seller's: the platform's balances are in shards (tests/payments/test_ledger_shards.py).
    pending = LedgerAccount.objects.filter(seller=seller, kind="pending")
    pending.update(balance_minor=F("balance_minor") + 1)

    with pytest.raises(CommandError, match="1 problem"):
        call_command("check_ledger")

    assert "running balance -1466 but its entries sum to -1467" in capsys.readouterr().err


def test_a_refund_marked_succeeded_without_its_posting_is_reported(books, capsys):
    pending = refund_create(order=books, amount_minor=100)
    Refund.objects.filter(pk=pending.pk).update(status=Refund.Status.SUCCEEDED)

    with pytest.raises(CommandError):
        call_command("check_ledger")

    err = capsys.readouterr().err
    assert f"Refund #{pending.pk} succeeded for 100; the ledger refunded nothing." in err
    # Its lines' shares are still in the ledger: the per-line check sees it too.
    assert f"Order #{books.pk}, line #" in err


def test_refund_counters_that_do_not_match_the_refunds_are_reported(books, capsys):
    seller_order = books.seller_orders.first()
    SellerOrder.objects.filter(pk=seller_order.pk).update(refunded_minor=300)

    with pytest.raises(CommandError):
        call_command("check_ledger")

    assert (
        f"Seller order #{seller_order.pk}: refunded 300, its lines say" in capsys.readouterr().err
    )


def test_a_line_whose_counters_drifted_is_reported(books, capsys):
    line = books.lines.first()
    OrderLine.objects.filter(pk=line.pk).update(
        refunded_seller_minor=F("refunded_seller_minor") + 1,
        refunded_commission_minor=F("refunded_commission_minor") - 1,
    )

    with pytest.raises(CommandError):
        call_command("check_ledger")

    assert f"Line #{line.pk}: refund counters" in capsys.readouterr().err
