"""The admin's header with an operator whose name is long: it stays inside the coloured
header, so its light text never lands on the white page (other tests take names from
Faker; one CI run reported a contrast problem at the header's name, not reproduced)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.services import operator_grant
from tests.browser.test_operator_day import admin_log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LONG_NAME = "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaferswessen Smith"


def test_a_long_operator_name_stays_inside_the_header(page: Page) -> None:
    operator = operator_grant(user=UserFactory(full_name=LONG_NAME))

    admin_log_in(page, operator.email)
    page.goto("/admin/payments/payoutrun/")

    name = page.locator("#user-tools strong")
    header = page.locator("#header").bounding_box()
    box = name.bounding_box()
    assert header is not None and box is not None
    assert box["y"] + box["height"] <= header["y"] + header["height"]
    expect(name).to_be_visible()
    # The page fixture fails the test on any serious axe-core problem (contrast).
