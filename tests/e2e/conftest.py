"""Browser-test fixtures: Debian's Chromium driven by Playwright's sync API against pytest-django's live_server."""

from __future__ import annotations

import os
import re
import threading
import time
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
    context = open_context(browser, live_server, viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    yield tab
    if getattr(request.node, "e2e_failed", False):
        shot(tab, f"FAILED-{request.node.name}")
    close_quietly(context)


# --- A test ends while its page may still be loading something (the 360 page fetches its panels after it
# shows). Were the database emptied for the next test meanwhile, that request would fail, and on SQLite —
# where the live server shares the test's in-memory connection — its open statement makes the flush fail with
# "database table is locked". So a context is closed only once the browser has its answers, and each test
# ends only once the server has finished every request it accepted.


def open_context(browser, live_server, **options):
    """A browser context (zh-CN, relative to the live server) that keeps count of its unanswered requests."""
    context = browser.new_context(base_url=live_server.url, locale="zh-CN", **options)
    context.set_default_timeout(TIMEOUT_MS)
    pending: set = set()
    context.on("request", lambda r: pending.add(r))  # Playwright takes functions, not built-in methods
    context.on("requestfinished", lambda r: pending.discard(r))
    context.on("requestfailed", lambda r: pending.discard(r))
    context.pharmacrm_pending = pending
    return context


def close_quietly(context) -> None:
    """Close `context` once none of its requests is waiting for an answer (at most TIMEOUT_MS)."""
    pending = getattr(context, "pharmacrm_pending", set())
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while pending and context.pages and time.monotonic() < deadline:
        context.pages[0].wait_for_timeout(25)  # Playwright delivers the events while it waits
    context.close()


class _RequestsInFlight:
    """Counts the requests the live server has accepted and not yet finished."""

    def __init__(self, httpd):
        self.count = 0
        self.changed = threading.Condition()
        accept, handle = httpd.process_request, httpd.process_request_thread

        def counted_accept(request, client_address):
            with self.changed:
                self.count += 1
            try:
                accept(request, client_address)
            except BaseException:
                self._done()
                raise

        def counted_handle(request, client_address):
            try:
                handle(request, client_address)
            finally:
                self._done()

        httpd.process_request, httpd.process_request_thread = counted_accept, counted_handle

    def _done(self) -> None:
        with self.changed:
            self.count -= 1
            self.changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count <= 0, timeout)


@pytest.fixture(scope="session")
def _server_requests(live_server) -> _RequestsInFlight:
    return _RequestsInFlight(live_server.thread.httpd)


@pytest.fixture(autouse=True)
def _server_finishes_before_the_flush(request):
    """Set up after pytest-django's transactional_db, so torn down before its flush."""
    if "live_server" not in request.fixturenames:
        yield
        return
    in_flight = request.getfixturevalue("_server_requests")
    yield
    assert in_flight.wait_idle(TIMEOUT_MS / 1000), "the live server was still answering when the test ended"


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
