"""The pages for past meetings on a phone (390 px) and a desktop (1440 px), in a real browser
(real Daphne, DEBUG off, full CSP, Debian's Chromium): the sessions list, a meeting's
history, search and the action items fit the screen (nothing scrolls sideways), tables
become lists on the phone with every value still shown, and the timeline's labels are
readable at round times.

Set HIST_SCREENSHOTS=/some/dir to keep a full-page picture of each page at each width.
"""

from __future__ import annotations

import itertools
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from sessions_app.models import CaptureSession, RTStream, User
from tests.browser import log_in, orm, problems
from tests.conftest import PASSWORD
from tests.sessions_app.conftest import fire, note, say
from tests.sessions_app.intelligence.kept_briefs import brief, decided, to_do

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WIDTHS = {"phone": 390, "desktop": 1440}
HEIGHTS = {"phone": 844, "desktop": 900}
MINUTES = 47  # a length whose even sixths (07:50, 15:40, …) are not round times


def a_recorded_week() -> dict[str, object]:
    """A 47-minute sales call with two speakers, a screen, insights, alerts and a brief with
    action items, and a few more sessions so the list has rows of every kind."""
    person = User.objects.create_user("mara", password=PASSWORD, display_name="Mara Lind")
    start = timezone.now() - timedelta(days=1)
    call = CaptureSession.objects.create(
        owner=person,
        title="Quarterly pricing review with Northwind Traders",
        series="Northwind renewal",
        videodb_id="cap-layout-call-0123456789abcdef",
        status=CaptureSession.Status.STOPPED,
        started_at=start,
        ended_at=start + timedelta(minutes=MINUTES),
        created_at=start,
    )
    mic = RTStream.objects.create(
        session=call, videodb_id="rts-l-mic", name="mic:default", kind="mic",
        media_types=["audio"], speaker_label="Mara Lind",
    )  # fmt: skip
    them = RTStream.objects.create(
        session=call, videodb_id="rts-l-sys", name="system_audio:default", kind="system_audio",
        media_types=["audio"], speaker_label="Northwind buyers",
    )  # fmt: skip
    screen = RTStream.objects.create(
        session=call, videodb_id="rts-l-screen", name="display:1", kind="screen",
        media_types=["video"],
    )  # fmt: skip
    base = int(start.timestamp() * 1000)
    lines = []
    for n in range(90):
        stream = mic if n % 3 else them
        text = f"Point {n}: the enterprise tier pricing and the renewal discount for year {n}"
        lines.append(say(stream, text, base + n * 31_000, final=True))
    for n in range(6):
        note(screen, f"Slide {n}: the price list for the enterprise tier", base + n * 400_000,
             kind="visual")  # fmt: skip
    note(them, "The buyer objects to the price of the enterprise tier", base + 300_000)
    fire(them, "pricing_discussed", base + 62_000, text="The price of the enterprise tier.")
    fire(them, "competitor_mentioned", base + 1_500_000, text="Contoso was named.")
    brief(call, final=True)
    decided(call, "Northwind renews on the enterprise tier", lines[40])
    to_do(call, "Send the revised enterprise quote with the renewal discount", lines[50],
          owner="Mara Lind", due="next Friday")  # fmt: skip
    to_do(call, "Check the legal terms of the multi-year contract", lines[60], owner="Bo")
    for n, status in enumerate(["exported", "active", "failed", "created"]):
        CaptureSession.objects.create(
            owner=person,
            title=f"Weekly sync number {n} about the roadmap and the hiring plan",
            videodb_id=f"cap-layout-{n}-fedcba9876543210" if status != "created" else "",
            status=status,
            created_at=start - timedelta(days=n + 1),
        )
    return {"call": call}


def _page(chromium: Browser, name: str) -> Page:
    context = chromium.new_context(viewport={"width": WIDTHS[name], "height": HEIGHTS[name]})
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.on("pageerror", lambda error: page.console_messages.append(f"pageerror: {error}"))
    return page


def _shoot(page: Page, name: str) -> None:
    if folder := os.environ.get("HIST_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / f"hist-{name}.png"), full_page=True)


def _overflow(page: Page) -> list[str]:
    """What sticks out to the right of the viewport (empty when the page fits)."""
    return page.evaluate(
        """() => {
          const width = window.innerWidth;
          if (document.documentElement.scrollWidth <= width) return [];
          return [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width + 0.5)
            .slice(0, 8)
            .map(e => `${e.tagName}.${e.className} ${e.getBoundingClientRect().right}`);
        }"""
    )


def _paths(call: CaptureSession) -> dict[str, str]:
    return {
        "sessions": "/",
        "history": f"/sessions/{call.pk}/history/",
        "search": "/search/?q=enterprise+discount&meaning=1",
        "actions": "/actions/",
    }


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_the_pages_for_past_meetings_fit_the_screen(
    width: str, live_server_url: str, chromium: Browser
) -> None:
    call = orm(a_recorded_week)["call"]
    page = _page(chromium, width)
    log_in(page, live_server_url, "mara", "/")
    for name, path in _paths(call).items():
        page.goto(f"{live_server_url}{path}")
        page.wait_for_load_state("networkidle")
        _shoot(page, f"{name}-{width}")
        assert _overflow(page) == [], f"{name} scrolls sideways at {WIDTHS[width]} px"
    assert problems(page.console_messages) == []


def _cells(row) -> list[tuple[str, str]]:
    """(caption shown before it, text) of each cell of a table row that is on screen."""
    return row.evaluate(
        """row => [...row.cells].filter(td => td.checkVisibility()).map(td => [
             getComputedStyle(td, '::before').content.replace(/^"|"$/g, ''),
             td.innerText.trim()])"""
    )


def _inside(page: Page, selector: str) -> bool:
    return page.evaluate(
        """selector => [...document.querySelectorAll(selector)].every(e => {
             const box = e.getBoundingClientRect();
             return box.left >= 0 && box.right <= window.innerWidth;
           })""",
        selector,
    )


def test_on_a_phone_the_tables_are_lists_with_every_value_shown(
    live_server_url: str, chromium: Browser
) -> None:
    call = orm(a_recorded_week)["call"]
    page = _page(chromium, "phone")
    log_in(page, live_server_url, "mara", f"/sessions/{call.pk}/history/")
    # Who spoke: each row is a block of captioned values, every one of them on screen.
    rows = page.locator(".channel-stats tbody tr")
    assert [_cells(row) for row in rows.all()] == [
        [["Speaker", "Mara Lind"], ["Channel", "Microphone"], ["Lines", "60"],
         ["Speaking time", "01:30"]],
        [["Speaker", "Northwind buyers"], ["Channel", "System audio"], ["Lines", "30"],
         ["Speaking time", "00:45"]],
    ]  # fmt: skip
    assert _inside(page, ".channel-stats td")

    page.goto(f"{live_server_url}/")
    rows = page.locator("#session-list tbody tr")
    assert rows.count() == 5
    cells = _cells(rows.first)
    assert cells[0][1].startswith("Quarterly pricing review with Northwind Traders")
    captions = dict(cells[1:-1])
    assert captions == {
        "Status": "Stopped",
        "Created": captions["Created"],
        "Duration": "47:00",  # hidden on phones before
        "Streams": "3",
        "Alerts": "2",
    }, captions
    assert cells[-1][1].startswith("History")
    assert _inside(page, "#session-list td")


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_the_timeline_is_labelled_at_round_times_in_readable_type(
    width: str, live_server_url: str, chromium: Browser
) -> None:
    call = orm(a_recorded_week)["call"]
    page = _page(chromium, width)
    log_in(page, live_server_url, "mara", f"/sessions/{call.pk}/history/")
    ticks = [t for t in page.locator(".timeline .tick").all() if t.is_visible()]
    labels = [t.text_content() for t in ticks]
    # Round times only: every label is a whole number of minutes, at an even step.
    assert all(re.fullmatch(r"\d\d:00", label) for label in labels), labels
    minutes = [int(label[:2]) for label in labels]
    steps = {b - a for a, b in itertools.pairwise(minutes)}
    assert len(steps) == 1 and steps.pop() in {1, 2, 5, 10, 15, 20, 30}, labels
    assert 3 <= len(labels) <= (5 if width == "phone" else 12), labels
    for tick in ticks:
        box = tick.bounding_box()
        assert box is not None and box["height"] >= 11, (labels, box)
    # Labels do not overlap one another.
    boxes = [t.bounding_box() for t in ticks]
    for left, right in itertools.pairwise(boxes):
        assert left["x"] + left["width"] <= right["x"], boxes
    row_labels = page.locator(".timeline .row-label")
    assert row_labels.first.bounding_box()["height"] >= 11

    # Still reachable from the keyboard: a bar is a link with a name, and opens its moment.
    bar = page.locator(".timeline a.bar-link").nth(10)
    assert bar.get_attribute("aria-label")
    bar.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**?at=*")
    assert page.locator("[data-jump]").count() == 1
    assert problems(page.console_messages) == []
