"""Fixtures of the revenue tests."""

import pytest


@pytest.fixture
def utc(settings):
    settings.TIME_ZONE = "UTC"
