"""The dashboard in a real browser (Debian's chromium through playwright) against the real server.

The web server is the Procfile's production line and the worker a real Celery worker with the
offline model, slowed down (BO1_OFFLINE_LATENCY_MS) so a running deliberation can be watched and
killed. Any console error or uncaught exception in a page fails the test. Screenshots land in
test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from sessions_app.models import Status
from tests.factories import SessionFactory, UserFactory
from tests.processes import ARTIFACTS, ROOT, start_web, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "secret-pass-123"
LIVE_TIMEOUT_MS = 120_000
# The README's screenshot is refreshed only on request, so a test run leaves the tree clean:
# BO1_UPDATE_SCREENSHOT=1 make test PYTEST_ARGS="tests/browser"
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"


@pytest.fixture(scope="module", autouse=True)
def sync_orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop registered in this thread while it is open, and
    Django then refuses ORM calls (test data, the database flush between tests) as if they came
    from async code. They do not: each runs while the loop is idle. Playwright documents this
    switch for Django's test suites."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker) -> Iterator[str]:
    """The production web server and a slowed-down worker, sharing the test stores."""
    with django_db_blocker.unblock():
        # DEBUG is off under test settings: whitenoise serves what collectstatic gathered.
        call_command("collectstatic", interactive=False, verbosity=0)
    web, base = start_web(WEB_CONCURRENCY="1")
    worker = start_worker(name="browser-worker", concurrency=2, BO1_OFFLINE_LATENCY_MS="300")
    try:
        yield base
    finally:
        worker.stop()
        web.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        "chromium is missing: apt-get install -y chromium (make test does)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """Console errors and uncaught exceptions seen by a page."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text} at {message.location}")

    def page_error(self, error: Exception) -> None:
        self.messages.append(f"uncaught: {error}")


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(chromium: Browser, problems: PageProblems, request) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("console", problems.console)
    page.on("pageerror", problems.page_error)
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
        assert problems.messages == [], problems.messages
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w-]", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS / f"{name}-last.png"), full_page=True)
        context.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("heading", name="Your sessions")).to_be_visible()


def create_session(
    page: Page,
    base: str,
    problem: str,
    max_rounds: int,
    context: str = '{"team_size": 12, "runway_months": 18}',
) -> str:
    page.get_by_role("link", name="New session").first.click()
    expect(page).to_have_url(f"{base}/sessions/new")
    page.get_by_label("The decision you face").fill(problem)
    page.get_by_label("Context (optional)").fill(context)
    page.get_by_label("Maximum discussion rounds (optional)").fill(str(max_rounds))
    page.get_by_role("button", name="Create and start").click()
    expect(page).to_have_url(re.compile(r"/sessions/bo1_[0-9a-f-]+$"))
    return page.url.rsplit("/", 1)[-1]


def every_control_is_labelled(page: Page) -> list[str]:
    """Ids of visible form controls without an accessible label."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('input, textarea, select'))
            .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
            .map(e => e.name || e.id)"""
    )


def test_log_in_and_see_only_ones_own_sessions(stack, page):
    alice = UserFactory(username="alice")
    mallory = UserFactory(username="mallory")
    mine = [
        SessionFactory(user=alice, problem_statement="Should we hire a head of sales this year?"),
        SessionFactory(
            user=alice,
            status=Status.COMPLETED,
            phase="complete",
            round_number=3,
            problem_statement="Should we move our servers to a cheaper provider?",
        ),
    ]
    SessionFactory(user=mallory, problem_statement="Mallory's private question about payroll")

    log_in(page, stack, "alice")
    cards = page.locator(".session-card")
    expect(cards).to_have_count(2)
    expect(cards.first).to_contain_text("cheaper provider")  # newest first
    expect(page.get_by_text("Mallory's private question")).to_have_count(0)
    assert every_control_is_labelled(page) == []

    page.get_by_label("Search sessions").fill("SALES")
    page.get_by_role("button", name="Apply").click()
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("head of sales")
    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Apply").click()
    expect(cards).to_have_count(1)
    expect(cards.first.locator(".badge")).to_have_text("completed")
    shot(page, "list-alice")

    # Someone else's session is not found, even by its address.
    theirs = SessionFactory(user=mallory)
    response = page.request.get(f"{stack}/api/v1/sessions/{theirs.id}")
    assert response.status == 404
    assert page.locator(".session-card").first.get_attribute("data-session-id") == mine[1].id

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def test_create_a_session_watch_it_complete_without_reloading_and_export_it(stack, page):
    UserFactory(username="alice")
    log_in(page, stack, "alice")
    assert every_control_is_labelled(page) == []
    session_id = create_session(
        page,
        stack,
        "Should our twelve-person startup open a second office in Lisbon next year?",
        max_rounds=2,
    )
    # A marker that a reload would wipe: the page must update itself.
    page.evaluate("window.__notReloaded = true")
    badge = page.locator("#session-status")
    expect(badge).to_have_text(re.compile(r"queued|running"))
    expect(page.locator("#board .member").first).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    first = page.locator("#transcript .contribution").first
    expect(first).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    # Appended live, with its Markdown emphasis rendered as an element, not as underscores.
    expect(first.locator(".contribution__content em").first).to_be_visible()
    expect(page.locator('[data-action="pause"]')).to_be_visible()
    expect(page.locator('[data-action="kill"]')).to_be_visible()
    shot(page, "session-running")

    expect(badge).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#synthesis .synthesis")).to_be_visible()
    expect(page.locator("#synthesis .synthesis")).not_to_be_empty()
    expect(page.locator("#votes .vote").first).to_be_visible()
    expect(page.locator("#consensus")).to_be_visible()
    expect(page.locator("#session-phase")).to_have_text("Complete")
    expect(page.locator("#live-status")).to_have_text("The deliberation has ended.")
    expect(page.locator('[data-action="kill"]')).to_be_hidden()
    expect(page.locator('[data-action="pause"]')).to_be_hidden()
    assert page.locator("#transcript .round").count() >= 2
    # Everything appended live is what a fresh load renders from PostgreSQL.
    live = page.locator("#transcript .contribution").count()
    live_votes = page.locator("#votes .vote").count()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "session-completed")
    readme_shot = page.screenshot(
        path=str(ARTIFACTS / "dashboard.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": 1500},
    )
    if os.environ.get("BO1_UPDATE_SCREENSHOT"):
        README_SCREENSHOT.write_bytes(readme_shot)

    with page.expect_download() as markdown_download:
        page.get_by_role("link", name="Export Markdown").click()
    assert markdown_download.value.suggested_filename == f"{session_id}.md"
    markdown = Path(markdown_download.value.path()).read_text()
    for heading in (
        "## Problem",
        "## Board",
        "## Transcript",
        "### Round 1",
        "## Votes",
        "## Synthesis",
    ):
        assert heading in markdown
    with page.expect_download() as json_download:
        page.get_by_role("link", name="Export JSON").click()
    assert json_download.value.suggested_filename == f"{session_id}.json"
    exported = json.loads(Path(json_download.value.path()).read_text())
    assert exported["session"]["status"] == "completed"
    assert exported["events"][-1]["event_type"] == "complete"

    page.reload()
    expect(page.locator("#session-status")).to_have_text("completed")
    assert page.locator("#transcript .contribution").count() == live
    assert page.locator("#votes .vote").count() == live_votes

    page.get_by_role("link", name="All sessions").click()
    card = page.locator(f'.session-card[data-session-id="{session_id}"]')
    expect(card.locator(".badge")).to_have_text("completed")


def test_kill_a_running_session(stack, page):
    UserFactory(username="alice")
    log_in(page, stack, "alice")
    session_id = create_session(
        page,
        stack,
        "Should we rewrite our billing system from scratch this quarter?",
        max_rounds=10,
    )
    expect(page.locator("#session-status")).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#transcript .contribution").first).to_be_visible(timeout=LIVE_TIMEOUT_MS)

    page.locator('[data-action="kill"]').click()
    expect(page.locator("#session-status")).to_have_text("killed")
    expect(page.locator("#control-message")).to_contain_text("Killed")
    expect(page.locator('[data-action="kill"]')).to_be_hidden()
    expect(page.locator("#live-status")).to_have_text("The deliberation has ended.")
    shot(page, "session-killed")

    detail = page.request.get(f"{stack}/api/v1/sessions/{session_id}").json()
    assert detail["status"] == "killed"
    # The worker stops: no new contribution after the kill.
    contributions = detail["contributions"]
    page.wait_for_timeout(2000)
    assert page.request.get(f"{stack}/api/v1/sessions/{session_id}").json()["contributions"] == (
        contributions
    )


def test_pause_and_resume_a_running_session(stack, page):
    UserFactory(username="alice")
    log_in(page, stack, "alice")
    create_session(page, stack, "Should we move our support team to a follow-the-sun rota?", 3)
    expect(page.locator("#session-status")).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#transcript .contribution").first).to_be_visible(timeout=LIVE_TIMEOUT_MS)

    page.locator('[data-action="pause"]').click()
    expect(page.locator("#session-status")).to_have_text("paused (user)")
    expect(page.locator('[data-action="pause"]')).to_be_hidden()
    expect(page.locator('[data-action="resume"]')).to_be_visible()
    shot(page, "session-paused")
    # The worker stops at its next call boundary; then nothing more arrives.
    page.wait_for_timeout(1500)
    settled = page.locator("#transcript .contribution").count()
    page.wait_for_timeout(1500)
    assert page.locator("#transcript .contribution").count() == settled

    page.locator('[data-action="resume"]').click()
    expect(page.locator("#session-status")).to_have_text(re.compile(r"queued|running"))
    expect(page.locator("#transcript .contribution").nth(settled)).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator("#session-status")).to_have_text("running")
    page.locator('[data-action="kill"]').click()
    expect(page.locator("#session-status")).to_have_text("killed")


def test_answer_the_boards_question_and_the_deliberation_continues(stack, page):
    UserFactory(username="alice")
    log_in(page, stack, "alice")
    # A short statement without context: the offline board asks what it needs to know.
    create_session(page, stack, "Hire a CTO now?", max_rounds=1, context="")
    form = page.locator("#clarification")
    expect(form).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#clarification-question")).not_to_be_empty()
    expect(page.locator("#session-status")).to_have_text("paused (clarification)")
    expect(page.locator('[data-action="resume"]')).to_be_hidden()
    shot(page, "session-clarification")

    page.get_by_label("Your answer").fill("We have 14 months of runway and two senior engineers.")
    page.get_by_role("button", name="Send answer and continue").click()
    expect(form).to_be_hidden()
    expect(page.locator("#session-status")).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#synthesis .synthesis")).to_be_visible()


def test_the_list_follows_a_running_session_and_the_pages_fit_a_phone(stack, page, chromium):
    UserFactory(username="alice")
    log_in(page, stack, "alice")
    session_id = create_session(
        page, stack, "Should we offer a four-day week to the whole team?", max_rounds=1
    )
    page.get_by_role("link", name="All sessions").click()
    card = page.locator(f'.session-card[data-session-id="{session_id}"]')
    expect(card.locator("progress")).to_be_visible()
    page.evaluate("window.__notReloaded = true")
    expect(card.locator(".badge")).to_have_text("completed", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "list-after-live-update")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{stack}/sessions/{session_id}")
    expect(page.locator("#session-status")).to_have_text("completed")
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "session-phone")
    page.goto(f"{stack}/sessions/new")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert every_control_is_labelled(page) == []
    shot(page, "new-session-phone")
