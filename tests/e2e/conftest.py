"""Browser-test fixtures: Debian's Chromium driven by Playwright's sync API against pytest-django's live_server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.e2e_failed = report.failed
    return report


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the tests of one module.

    Playwright's sync API keeps an asyncio loop in this thread while it runs; the ORM calls a test makes
    between browser steps are still ordinary synchronous code, so Django's async-safety check is told so
    for that time only. Module scope ends the loop before tests of other modules run in this process."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium).")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed.")
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(request, browser, live_server):
    """A page in a fresh browser context that speaks Chinese (zh-CN), addressed relative to the live server."""
    context = browser.new_context(
        base_url=live_server.url, locale="zh-CN", viewport={"width": 1366, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    if getattr(request.node, "e2e_failed", False):
        shot(tab, f"FAILED-{request.node.name}")
    context.close()


def shot(page, name: str) -> Path:
    """Save a full-page screenshot under test-results/ (git-ignored) and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """Fill the sign-in form and submit it; the caller checks where it lands."""
    from django.urls import reverse

    page.goto(reverse("login"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.press("#id_password", "Enter")


def html_lang(page) -> str:
    return page.locator("html").get_attribute("lang") or ""


def validation_message(validator, value, language: str) -> str:
    """The message `validator` gives for `value` to a user of `language` (what the page must show)."""
    from django.core.exceptions import ValidationError
    from django.utils import translation

    with translation.override(language):
        try:
            validator(value)
        except ValidationError as e:
            return e.messages[0]
    raise AssertionError(f"{value!r} passes {validator.__name__}")
