import pytest
from django.core.management import call_command

from accounts.models import Seller
from marketplace.models import Category, Product

pytestmark = pytest.mark.django_db


def test_seed_demo_if_empty_leaves_a_database_with_users_alone(capsys, customer):
    call_command("seed_demo", "--if-empty")

    assert (Seller.objects.count(), Category.objects.count(), Product.objects.count()) == (0, 0, 0)
    assert "already has users" in capsys.readouterr().out
