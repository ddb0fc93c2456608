"""Finding a moment in a real browser: active search as one types, then the moment opened
(real Daphne, DEBUG off, full CSP, Debian's Chromium)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from sessions_app.models import CaptureSession, RTStream, User
from tests.browser import log_in, orm, problems
from tests.conftest import PASSWORD
from tests.sessions_app.conftest import say

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

NEEDLE = "the quarterly budget for Lisbon is approved"


def a_long_past_meeting() -> tuple[CaptureSession, int]:
    """A stopped meeting of 120 lines; the one worth finding is far down the page."""
    person = User.objects.create_user("mara", password=PASSWORD, display_name="Mara")
    start = timezone.now() - timedelta(days=1)
    session = CaptureSession.objects.create(
        owner=person,
        title="Planning offsite",
        videodb_id="cap-history-1",
        status=CaptureSession.Status.STOPPED,
        started_at=start,
        ended_at=start + timedelta(minutes=40),
    )
    mic = RTStream.objects.create(
        session=session,
        videodb_id="rts-h-mic",
        name="mic:default",
        kind="mic",
        media_types=["audio"],
    )
    base = int(start.timestamp() * 1000)
    needle = None
    for n in range(120):
        text = NEEDLE if n == 100 else f"Agenda item {n}: we discussed the plan for week {n}"
        segment = say(mic, text, base + n * 15_000, final=True)
        if n == 100:
            needle = segment
    return session, needle.pk


def test_typing_finds_the_moment_and_opening_it_scrolls_to_the_line(
    live_server_url: str, page: Page
) -> None:
    session, line_id = orm(a_long_past_meeting)
    log_in(page, live_server_url, "mara", "/search/")
    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if "/search/?" in r.url else None)

    box = page.get_by_role("searchbox", name="Search what was said, shown and flagged")
    box.press_sequentially("lisbon budg*", delay=40)
    # A pause while typing (a loaded machine) may show the hits of "lisbon " first: wait for
    # the whole query's answer, which also moves the address.
    page.wait_for_url(re.compile(r"q=lisbon(%20|\+)budg"))
    hit = page.locator(".hit").first
    hit.wait_for()
    assert "Lisbon" in hit.inner_text()
    assert page.locator(".hit-text mark").first.inner_text() in {"Lisbon", "budget"}
    assert page.get_by_role("heading", name="1 moment found").is_visible()
    # Debounced: one request per pause, not one per key (12 keys were typed).
    assert 1 <= len(searches) <= 4, searches
    # The address follows the search, so it can be shared or reloaded.
    assert "q=lisbon%20budg" in page.url or "q=lisbon+budg" in page.url
    assert page.url.startswith(f"{live_server_url}/search/")

    page.locator(".hit-link").first.click()
    page.wait_for_url(f"**/sessions/{session.pk}/history/**")
    line = page.locator(f"#line-{line_id}")
    assert line.get_attribute("data-jump") == "true"
    assert "current" in (line.get_attribute("class") or "")
    # The page opened at the line: it is on screen without the person scrolling.
    box_on_screen = line.bounding_box()
    viewport = page.viewport_size
    assert box_on_screen is not None and viewport is not None
    assert 0 <= box_on_screen["y"] <= viewport["height"] - box_on_screen["height"]
    assert page.evaluate("window.scrollY") > 500
    assert problems(page.console_messages) == []


def test_a_timeline_mark_opens_its_moment(live_server_url: str, page: Page) -> None:
    session, _ = orm(a_long_past_meeting)
    log_in(page, live_server_url, "mara", f"/sessions/{session.pk}/history/")
    bars = page.locator(".timeline rect.bar")
    assert bars.count() > 50
    bars.last.click()
    page.wait_for_url("**?at=*")
    current = page.locator("[data-jump]")
    assert current.count() == 1
    text = current.inner_text()
    assert "Agenda item 119" in text or "Agenda item 118" in text
    assert page.evaluate("window.scrollY") > 500
    assert problems(page.console_messages) == []
