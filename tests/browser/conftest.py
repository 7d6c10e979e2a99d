"""Real-browser fixtures: one Chromium per module, a fresh context per test.

Playwright's own browser download is not used; Debian's Chromium is launched
instead. The live server listens on 127.0.0.1 so that no traffic leaves the
machine, and every test can save full-page screenshots of its steps into
``test-artifacts/screenshots/`` (git-ignored) with the ``shot`` fixture.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import CHROMIUM
from tests.factories import CommissionRuleFactory, ProductFactory

# pytest-django's live server binds to "localhost" unless told otherwise;
# keep all browser traffic on the IPv4 loopback address.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP_VIEWPORT = {"width": 1280, "height": 900}
# Fail fast: every page here renders in well under a second.
TIMEOUT_MS = 5_000

expect.set_options(timeout=TIMEOUT_MS)

Shot = Callable[["Page", str], Path]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, started once per test module.

    While Playwright's sync API is started, an asyncio event loop counts as
    running on the main thread, and Django's ORM refuses to work there
    ("SynchronousOnlyOperation: You cannot call this from an async context"):
    factories, database assertions and pytest-django's flush between
    transactional tests would all fail. Nothing here really shares that loop
    with the ORM, so DJANGO_ALLOW_ASYNC_UNSAFE switches the check off, but
    only while Playwright runs: set for the whole process (at import time) it
    leaks into other tests, e.g. the subprocess of ``check --deploy`` in
    tests/test_settings.py fails with async.E001. The module scope stops
    Playwright, and its loop, before the next module's tests run.
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Remember each phase's report on the test item, so fixtures can see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _file_stem(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


@pytest.fixture
def open_context(
    browser: Browser, live_server, request: pytest.FixtureRequest
) -> Iterator[Callable[[], BrowserContext]]:
    """``open_context()``: a new browser context (its own cookies: another person)
    pointed at the live server. Every page it loads is checked with axe-core as it
    loads (see ``AxeOnEveryPage``); a test that passes fails at teardown if one had
    a serious or critical problem."""
    opened: list[tuple[BrowserContext, AxeOnEveryPage]] = []

    def open_() -> BrowserContext:
        context = browser.new_context(viewport=DESKTOP_VIEWPORT, base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        opened.append((context, AxeOnEveryPage(context)))
        return context

    yield open_
    report = getattr(request.node, "report_call", None)
    for context, axe in opened:
        axe.settle()
        context.close()
    if report is not None and report.passed:
        checked = set().union(*(axe.checked for _, axe in opened))
        problems = [problem for _, axe in opened for problem in axe.problems]
        assert checked, "no page was checked for accessibility"
        assert not problems, "Accessibility problems:\n" + "\n".join(problems)


@pytest.fixture
def page(open_context, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a new browser context, checked with axe-core on every load.

    The test's screenshots from an earlier run are removed first; a failing test
    leaves ``<test name>-FAILED.png`` showing where it stopped.
    """
    for old in SCREENSHOT_DIR.glob(f"{_file_stem(request)}-*.png"):
        old.unlink()
    page = open_context().new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT_DIR / f"{_file_stem(request)}-FAILED.png", full_page=True)


class AxeOnEveryPage:
    """Runs axe-core on every page a browser context loads, in any of its tabs, and
    keeps the serious and critical problems by URL.

    axe-core and a small script go into every page as init scripts: on ``load``
    the page runs axe on itself and hands the result to Python through an exposed
    binding, whose callback only records it (Playwright calls are not made from
    event callbacks). A page left before axe finishes is not reported; the next one
    is. ``settle()`` waits for the checks still running on the open pages.
    """

    RUN = """
    if (window.top === window) {
      window.__axeRun = new Promise((resolve) => {
        window.addEventListener("load", async () => {
          // Measure the page as it settles: fonts in, two frames laid out.
          await document.fonts.ready;
          await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
          const result = await axe.run(document, {resultTypes: ["violations"]});
          const found = result.violations
            .filter((v) => ["serious", "critical"].includes(v.impact))
            .map((v) => `${v.impact}: ${v.id} (${v.help}) at ` +
              v.nodes.slice(0, 5).map((n) => n.target.join(" ") +
                n.any.map((check) => ` (${check.message})`).join("")).join(", "));
          await window.__axeReport(location.href, found);
          resolve();
        });
      });
    }
    """

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.checked: set[str] = set()
        self.problems: list[str] = []
        context.add_init_script(path=str(AXE))
        context.add_init_script(script=self.RUN)
        context.expose_binding("__axeReport", self.record)

    def record(self, source, url: str, found: list[str]) -> None:
        self.checked.add(url)
        self.problems += [f"{url}: {problem}" for problem in found]

    def settle(self) -> None:
        for page in self.context.pages:
            # A closed or navigating page has nothing left to wait for.
            with contextlib.suppress(PlaywrightError):
                page.evaluate("() => window.__axeRun")


AXE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"
BLOCKING_IMPACTS = ("serious", "critical")


def accessibility_violations(page: Page) -> list[str]:
    """The page's serious and critical accessibility violations, found by axe-core
    (vendored from the npm registry, injected into the page)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + ", ".join(
            " ".join(node["target"]) + "".join(f" ({check['message']})" for check in node["any"])
            for node in v["nodes"][:5]
        )
        for v in violations
        if v["impact"] in BLOCKING_IMPACTS
    ]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """``shot(page, step)`` saves a full-page screenshot as ``<test name>-<step>.png``
    and fails the test if axe-core finds a serious or critical accessibility problem
    on the page: every step a journey records is also checked."""

    def take(page: Page, step: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{_file_stem(request)}-{step}.png"
        page.screenshot(path=path, full_page=True)
        problems = accessibility_violations(page)
        assert not problems, f"{step} on {page.url}: " + "; ".join(problems)
        return path

    return take


@pytest.fixture
def shop(seller, other_seller, category, eager_celery):
    """Two shops selling in USD, on a 10% platform commission."""
    CommissionRuleFactory(percentage_bps=1000)
    teapot = ProductFactory(
        seller=seller,
        category=category,
        title="Blue Teapot",
        slug="blue-teapot",
        price_minor=2500,
        stock=3,
    )
    print_ = ProductFactory(
        seller=other_seller,
        category=category,
        title="Harbour Print",
        slug="harbour-print",
        price_minor=1000,
        stock=3,
    )
    return teapot, print_
