"""The live brief in a real browser: the emulator plays a meeting, the relay stores its lines,
the brief refreshes in the worker and its items appear and change on the open page without a
reload; an evidence link scrolls to and highlights the line it cites.

On the embedded pass Daphne runs the worker and the relay; with Redis they are processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions_app.capture import handoff
from sessions_app.models import Brief, BriefItem, CaptureSession
from tests.browser import log_in, orm, problems
from tests.conftest import (
    TINY_MEETING,
    live_stack,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]

SCREENSHOTS = Path("/tmp")


@pytest.fixture
def system(settings, tmp_path: Path) -> Iterator[dict]:
    # The reconciler is the final pass's backstop (a pass that found the brief busy): often here.
    with live_stack(
        settings, tmp_path, beat=True, BRIEF_MIN_NEW_CHARS="60", RECONCILE_INTERVAL_SECONDS="3"
    ) as state:
        yield state


def test_the_brief_appears_and_updates_live_and_its_evidence_lands_on_the_line(
    system, owner, page
) -> None:
    url, emulator = system["url"], system["emulator"]
    session = orm(
        lambda: handoff.create_session(
            owner, title="Pricing review", audio_prompt="Decisions", visual_prompt="Screen"
        )
    )
    detail = f"/sessions/{session.pk}/"
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, url, owner.username, detail)
    page.wait_for_selector("#connection[data-state='live']", timeout=15_000)
    assert "The brief appears once there is enough conversation." in page.inner_text("#brief")

    token = orm(lambda: handoff.mint_client_token(session).token)
    emulator.control.simulate(session.videodb_id, TINY_MEETING, speed=0.5, client_token=token)

    # The first brief arrives while the meeting goes on, then a later one adds the decision.
    page.wait_for_selector("#brief-summary-list li.brief-item", timeout=60_000)
    first_status = page.inner_text("#brief-status")
    assert first_status.startswith("Updated at")
    decision = page.wait_for_selector("#brief-decision-list li.brief-item", timeout=60_000)
    assert "We decided to offer a discount." in decision.inner_text()
    page.wait_for_selector("#brief-action-list li.brief-item", timeout=30_000)

    # Its evidence link scrolls to the cited transcript line and highlights it.
    link = page.locator("#brief-decision-list li.brief-item a.cite").first
    target = link.get_attribute("data-moment")
    assert target and target.startswith("seg-")
    page.locator("#transcript").evaluate("feed => { feed.scrollTop = 0; }")
    link.click()
    page.wait_for_selector(f"#{target}.cited", timeout=5_000)
    assert page.url.endswith(detail)  # scrolled in place: no navigation to history

    # Capture stops: the final pass settles the brief, still without a reload.
    emulator.control.wait_for_meeting(session.videodb_id, timeout=60)
    page.locator("#brief-status", has_text="Final brief").wait_for(timeout=90_000)
    page.screenshot(path=str(SCREENSHOTS / "brief-1440.png"), full_page=False)

    def on_the_page() -> set[str]:
        return set(page.eval_on_selector_all(
            "#brief li.brief-item:not([hidden])", "els => els.map(e => e.id)"
        ))  # fmt: skip

    stored = orm(
        lambda: {
            f"brief-{pk}"
            for pk in BriefItem.objects.filter(session=session, is_current=True).values_list(
                "pk", flat=True
            )
        }
    )
    assert on_the_page() == stored
    # Made while the meeting went on, then again, then the final pass (or it settled the last).
    assert orm(lambda: Brief.objects.filter(session=session).count()) >= 2
    page.reload()
    assert on_the_page() == stored  # the page load renders what the pushes built
    assert orm(lambda: CaptureSession.objects.get(pk=session.pk).brief_paused) == ""

    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#brief").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "brief-390.png"), full_page=False)
    fits = page.evaluate(
        "(b => b.getBoundingClientRect().right <= innerWidth && b.scrollWidth <= b.clientWidth)"
        "(document.getElementById('brief'))"
    )
    assert fits, "the brief fits a narrow screen without scrolling sideways"
    assert problems(page.console_messages) == []
