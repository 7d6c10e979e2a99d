import pytest
from django.core.management import call_command

from accounts.models import Seller, User
from accounts.roles import is_operator
from marketplace.demo import CUSTOMERS, OPERATOR, SELLERS
from marketplace.models import Category, Order, Product
from payments.checks import ledger_check

pytestmark = pytest.mark.django_db


def counts():
    return (
        User.objects.count(),
        Seller.objects.count(),
        Category.objects.count(),
        Product.objects.count(),
    )


def test_seed_demo_creates_the_demo_marketplace_and_prints_the_logins(capsys):
    call_command("seed_demo")

    out = capsys.readouterr().out
    assert counts() == (7, 4, 8, 32)
    assert set(Seller.objects.values_list("default_currency", flat=True)) == {"USD", "EUR", "JPY"}
    assert Order.objects.count() == 4
    assert set(Order.objects.values_list("status", flat=True)) == {
        "paid",
        "partially_refunded",
        "refunded",
        "awaiting_payment",
    }
    assert ledger_check().ok, ledger_check().problems
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="payments.tasks.run_payouts_task").count() == 2
    enabled = Seller.objects.filter(payout_status="enabled").exclude(payout_account_id="")
    assert enabled.count() == 3
    kyoto = Seller.objects.get(default_currency="JPY")  # paid by bank transfer instead
    assert kyoto.payout_policy.method == "manual" and kyoto.has_bank_details
    operator = User.objects.get(email=OPERATOR[0])
    assert is_operator(operator) and not operator.is_superuser
    for email, password, *_ in [OPERATOR, *CUSTOMERS, *SELLERS]:
        assert f"{email}" in out and password in out
        assert User.objects.get(email=email).check_password(password)
    assert Product.objects.filter(is_featured=True).exists()
    # Prices were typed as decimals and stored exactly in minor units.
    assert Product.objects.get(title="The Lighthouse Keeper").price_minor == 1899
    assert Product.objects.get(title="Matcha Bowl").price_minor == 6500


def test_seed_demo_twice_changes_nothing(capsys):
    call_command("seed_demo")
    before = counts()
    changed = Product.objects.get(title="Matcha Bowl")
    changed.stock = 1
    changed.save()

    call_command("seed_demo")

    assert counts() == before
    assert Order.objects.count() == 4
    assert Product.objects.get(title="Matcha Bowl").stock == 1
    assert "Demo data: 0 rows created." in capsys.readouterr().out


def test_seed_demo_if_empty_leaves_a_database_with_users_alone(capsys, customer):
    call_command("seed_demo", "--if-empty")

    assert counts()[1:] == (0, 0, 0)
    assert "already has users" in capsys.readouterr().out
