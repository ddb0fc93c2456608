"""Asking the meeting and catching up, in a real browser against a real Daphne whose VideoDB
is the emulator (DEBUG off, full CSP): a first visit to a meeting under way is caught up, a
question gets a cited answer whose citation lands on its line, and a page that was away is
caught up on what it missed.

What happens while the page is away is stored from this process, not pushed: the page learns
of it from the replay when its socket comes back, on both passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from sessions_app.models import BriefItem, CaptureSession, RTStream, User
from tests.browser import log_in, orm, problems
from tests.conftest import PASSWORD, start_server
from tests.sessions_app.conftest import fire, say, take_seq

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SCREENSHOTS = "/tmp/ask-{}.png"


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[str]:
    from videodb_emulator.testing import running_emulator

    with running_emulator() as emulator:
        url, process = start_server(
            tmp_path, VIDEODB_BASE_URL=emulator.base_url, VIDEODB_API_KEY=None
        )
        try:
            yield url
        finally:
            process.stop()


@pytest.fixture
def stage(server: str) -> dict:
    """A pricing call live for three minutes: four lines said, one alert, one decision."""

    def build() -> dict:
        owner = User.objects.create_user("olivia", password=PASSWORD, display_name="Olivia")
        session = CaptureSession.objects.create(
            owner=owner, title="Pricing call", videodb_id="cap-ask-1",
            status=CaptureSession.Status.ACTIVE,
            started_at=timezone.now() - timedelta(minutes=3),
        )  # fmt: skip
        mic = RTStream.objects.create(
            session=session, videodb_id="rts-mic", name="mic:default", kind="mic",
            media_types=["audio"],
        )  # fmt: skip
        others = RTStream.objects.create(
            session=session, videodb_id="rts-sys", name="system_audio:default",
            kind="system_audio", media_types=["audio"],
        )  # fmt: skip
        start = int(session.started_at.timestamp() * 1000)
        say(mic, "Welcome, let's look at the pricing page.", start + 1_000, final=True)
        say(others, "The enterprise tier costs too much for us.", start + 5_000, final=True)
        decision = say(
            mic, "We decided to offer a ten percent discount.", start + 9_000, final=True
        )
        say(others, "Great, send the quote by Friday.", start + 13_000, final=True)
        fire(mic, "pricing_discussed", start + 5_000, text="A price was named")
        BriefItem.objects.create(
            session=session, kind="decision", key="discount",
            text="Offer a ten percent discount",
            evidence=[{"kind": "transcript", "id": decision.pk}], seq=take_seq(session.pk),
        )  # fmt: skip
        return {"session": session, "mic": mic, "start": start, "decision": decision}

    return orm(build)


def test_catch_up_on_joining_ask_a_cited_question_and_catch_up_after_being_away(
    server: str, page: Page, stage: dict
) -> None:
    session, decision = stage["session"], stage["decision"]
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, server, "olivia", f"/sessions/{session.pk}/")
    page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)

    # A first visit to a meeting live for three minutes: what was settled and flagged.
    panel = page.locator("#catch-up .catch-up")
    panel.wait_for(timeout=10_000)
    assert "Since you joined" in panel.inner_text()
    assert "Offer a ten percent discount" in panel.inner_text()
    assert "Pricing discussed" in panel.inner_text()
    page.screenshot(path=SCREENSHOTS.format("joined-1440"), full_page=True)
    page.get_by_role("button", name="Dismiss", exact=True).click()
    assert page.locator("#catch-up").is_hidden()

    # Ask: the answer cites the line, and the citation brings it into view, highlighted.
    page.get_by_label("Your question").fill("What discount did we decide on?")
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#questions .question-answered")
    answer.wait_for(timeout=20_000)
    assert "ten percent discount" in answer.inner_text()
    assert page.locator("#questions .question").count() == 1  # pushed and answered: one item
    assert page.get_by_label("Your question").input_value() == ""
    answer.locator("a.cite").first.click()
    page.wait_for_selector(f"#seg-{decision.pk}.cited", timeout=5_000)
    assert page.url.endswith(f"/sessions/{session.pk}/")  # it stayed on the live page
    page.screenshot(path=SCREENSHOTS.format("answer-1440"), full_page=True)

    # The page goes away; meanwhile an alert fires. When its socket is back, the replay
    # brings it, and the page says what arrived while it was away.
    page.context.set_offline(True)
    page.wait_for_selector('#connection[data-state="offline"]', timeout=10_000)
    orm(lambda: fire(stage["mic"], "competitor_named", stage["start"] + 20_000, text="Acme"))
    page.context.set_offline(False)
    page.wait_for_selector('#connection[data-state="live"]', timeout=20_000)
    panel.wait_for(timeout=10_000)
    assert "Since you were last here" in panel.inner_text()
    assert "Competitor named" in panel.inner_text()
    assert "Pricing discussed" not in panel.inner_text()  # seen before it went away

    page.set_viewport_size({"width": 390, "height": 844})
    # What this adds fits the phone's width (the owner's status card and token, above, are
    # wider on their own).
    for part in ("#catch-up", "#ask"):
        box = page.locator(part).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, part
        right = page.evaluate(
            f"Math.max(...[...document.querySelectorAll('{part} *')]"
            ".map(e => e.getBoundingClientRect().right))"
        )
        assert right <= 390, part
    page.screenshot(path=SCREENSHOTS.format("away-390"), full_page=True)
    page.locator("#catch-up").screenshot(path=SCREENSHOTS.format("catch-up-390"))
    page.locator("#ask").screenshot(path=SCREENSHOTS.format("card-390"))
    page.get_by_role("button", name="Dismiss", exact=True).click()

    # Dismissed: a reload has nothing to catch up on.
    page.reload()
    page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    page.wait_for_timeout(500)
    assert page.locator("#catch-up").is_hidden()
    assert problems(page.console_messages) == []
