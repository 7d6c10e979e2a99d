import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import ProductFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    """An API client as nobody; ``api_as(user)`` signs in with a real API token."""
    return APIClient()


@pytest.fixture
def other_customer(db):
    return UserFactory(email="other-customer@example.com")


@pytest.fixture
def mug(seller):
    return ProductFactory(seller=seller, price_minor=1000, stock=5)
