"""The whole live path in a real browser: the emulator plays a meeting, VideoDB's webhooks
start the AI, the relay stores and pushes every event, and Chromium shows it: interim text
replaced by the final, the alert notice, a silent channel flagged, and a dropped server
connection and a reload that both end with exactly what was stored, no gaps, no doubles.

On the embedded pass Daphne runs the worker and the relay; with Redis they are processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions_app.capture import handoff
from sessions_app.models import AlertRule, CaptureSession, TranscriptSegment
from tests.browser import log_in, orm
from tests.conftest import (
    TINY_MEETING,
    live_stack,
    start_server,
    wait_until,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]


@pytest.fixture
def system(settings, tmp_path: Path) -> Iterator[dict]:
    with live_stack(settings, tmp_path, LIVE_SILENCE_WARNING_SECONDS="2") as state:
        yield state


def segment_ids_on_page(page) -> list[str]:
    return page.eval_on_selector_all("#transcript li.line", "els => els.map(e => e.id)")


def test_a_simulated_meeting_plays_live_and_survives_a_dropped_connection(
    system, owner, page
) -> None:
    url, emulator = system["url"], system["emulator"]

    def create() -> CaptureSession:
        rule = AlertRule.objects.create(
            owner=owner, label="pricing", prompt="Someone discusses the price", target="both"
        )
        return handoff.create_session(
            owner, title="Pricing review", audio_prompt="Decisions", visual_prompt="Screen",
            alert_rules=[rule],
        )  # fmt: skip

    session = orm(create)
    detail = f"/sessions/{session.pk}/"

    log_in(page, url, owner.username, detail)
    page.wait_for_selector("#connection[data-state='live']", timeout=15_000)

    token = orm(lambda: handoff.mint_client_token(session).token)
    emulator.control.simulate(session.videodb_id, TINY_MEETING, speed=0.5, client_token=token)

    # Interim text appears (pushed, never stored), and the line's final replaces it: the
    # stored line of that stream and start is shown, the interim element is gone.
    interim = page.wait_for_selector("#transcript li.line.interim", timeout=30_000)
    stream, start = interim.get_attribute("data-stream"), interim.get_attribute("data-order")
    final = page.wait_for_selector(
        f'#transcript li.line[id^="seg-"][data-stream="{stream}"][data-order="{start}"]',
        timeout=20_000,
    )
    assert "interim" not in final.get_attribute("class")
    assert segment_ids_on_page(page).count(final.get_attribute("id")) == 1

    # A channel falls silent for longer than the threshold while the session is active.
    page.wait_for_selector(".health[data-state='silent']", timeout=20_000)

    # The scripted pricing objection raises an alert, under the rule's name.
    page.locator("#alerts .alert-item", has_text="Pricing").wait_for(timeout=30_000)

    # The server goes away mid-meeting (a network drop for the browser) and comes back.
    server = system["server"]
    port = int(url.rsplit(":", 1)[1])
    server.stop()
    page.wait_for_selector("#connection:not([data-state='live'])", state="attached", timeout=15_000)
    _, restarted = start_server(system["tmp_path"], port=port, **system["env"])
    system["server"] = restarted
    # Attached, not visible: the meeting may have ended meanwhile, and an ended page hides it.
    page.wait_for_selector("#connection[data-state='live']", state="attached", timeout=45_000)

    emulator.control.wait_for_meeting(session.videodb_id, timeout=60)

    def stored_finals() -> set[str]:
        return set(
            orm(
                lambda: [
                    f"seg-{pk}"
                    for pk in TranscriptSegment.objects.filter(
                        session=session, is_final=True
                    ).values_list("pk", flat=True)
                ]
            )
        )

    def page_matches_database() -> bool:
        ids = segment_ids_on_page(page)
        interims = page.eval_on_selector_all("#transcript li.line.interim", "els => els.length")
        expected = stored_finals()
        return (
            bool(expected)
            and len(ids) == len(set(ids))
            and set(ids) == expected
            and (interims == 0)
        )

    # Everything the relay stored (including its backfill after the drop) is on the page,
    # once each, all final.
    remote_lines = sum(
        len(emulator.connect().get_collection().get_rtstream(s.videodb_id)
            .get_transcript(page_size=1000)["segments"])
        for s in orm(lambda: list(CaptureSession.objects.get(pk=session.pk).streams.all()))
    )  # fmt: skip
    wait_until(lambda: len(stored_finals()) == remote_lines, 30, "the relay to catch up")
    wait_until(page_matches_database, 30, "the page to match the database")

    # A reload shows the same, from the database.
    page.reload()
    wait_until(page_matches_database, 15, "the reloaded page to match the database")
    text = page.inner_text("#transcript")
    assert "pricing page" in text
