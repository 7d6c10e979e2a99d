"""The browser tests' accessibility net: every page a journey loads is checked."""

import pytest

from tests.browser.conftest import AxeOnEveryPage

pytestmark = pytest.mark.browser

BAD = "data:text/html,<html lang=en><title>t</title><main><img src=x.png></main></html>"
GOOD = "data:text/html,<html lang=en><title>t</title><main><h1>Fine</h1></main></html>"


def test_every_loaded_page_is_checked_and_a_critical_problem_is_kept(browser) -> None:
    context = browser.new_context()
    try:
        axe = AxeOnEveryPage(context)
        page = context.new_page()
        page.goto(GOOD)
        page.evaluate("() => window.__axeRun")
        page.goto(BAD)
        axe.settle()
    finally:
        context.close()

    assert axe.checked == {GOOD, BAD}
    assert len(axe.problems) == 1
    assert axe.problems[0].startswith(f"{BAD}: critical: image-alt")
