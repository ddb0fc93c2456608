"""Repetition shown once, in a real browser: the emulator plays the bundled sales call through
the whole stack (webhooks, the AI, the relay), the live page grows each insight's and each
screen span's element in place as VideoDB repeats itself, a reload shows the very same
elements, and the history page lists and counts the groups. Screenshots at 1440 px and
390 px are left in /tmp for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions_app.capture import handoff
from sessions_app.history import record
from sessions_app.models import CaptureSession
from tests.browser import log_in, orm, problems
from tests.conftest import live_stack, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

SCREENSHOTS = Path("/tmp")
WIDTHS = {"wide": 1440, "narrow": 390}


@pytest.fixture
def system(settings, tmp_path: Path) -> Iterator[dict]:
    with live_stack(settings, tmp_path) as state:
        yield state


def listed(page, list_id: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#{list_id} > li[data-order]:not(.slot)", "els => els.map(e => e.id)"
    )


# The elements of the lists under test that reach past the window's right edge.
PAST_THE_EDGE = """
(selector) => [...document.querySelectorAll(selector)]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.id || e.className)
"""


def shoot(page, name: str, lists: str, cards: tuple[str, ...]) -> None:
    """Screenshots at each width, of the page and of each of ``cards`` (selectors) alone;
    ``lists`` (a selector) must fit the window at each width."""
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 1000})
        page.screenshot(path=str(SCREENSHOTS / f"repeats-{name}-{label}.png"), full_page=True)
        for n, card in enumerate(cards):
            shot = SCREENSHOTS / f"repeats-{name}-{label}-{n}.png"
            page.locator(card).first.screenshot(path=str(shot))
        assert page.evaluate(PAST_THE_EDGE, lists) == [], f"{name} at {width} px"


def test_the_sales_call_shows_each_repetition_once_live_after_a_reload_and_in_history(
    system, owner, page
) -> None:
    url, emulator = system["url"], system["emulator"]
    session = orm(
        lambda: handoff.create_session(
            owner, title="Sales call", audio_prompt="Decisions", visual_prompt="Screen"
        )
    )
    page.set_viewport_size({"width": WIDTHS["wide"], "height": 1000})
    log_in(page, url, owner.username, f"/sessions/{session.pk}/")
    page.wait_for_selector("#connection[data-state='live']", timeout=15_000)

    token = orm(lambda: handoff.mint_client_token(session).token)
    emulator.control.simulate(session.videodb_id, "sales_call", speed=12, client_token=token)
    emulator.control.wait_for_meeting(session.videodb_id, timeout=120)

    def shown() -> tuple[list[str], list[str], record.SessionRecord]:
        rec = record.load(CaptureSession.objects.get(pk=session.pk))
        return (
            [f"ins-{group.id}" for group in rec.insights],
            [f"ins-{span.id}" for span in rec.screens],
            rec,
        )

    def page_matches_database() -> bool:
        insights, screens, _rec = orm(shown)
        return (
            bool(insights)
            and sorted(listed(page, "insights")) == sorted(insights)
            and sorted(listed(page, "screen")) == sorted(screens)
        )

    wait_until(page_matches_database, 60, "the live page to show every group once")
    insights, screens, rec = orm(shown)
    assert len(rec.audio) > len(rec.insights) and len(rec.visual) > len(rec.screens)
    repeated = max(rec.insights, key=lambda group: group.count)
    element = page.locator(f"#ins-{repeated.id}")
    assert f"reported {repeated.count} times" in element.inner_text()
    shoot(
        page,
        "live",
        "#insights, #insights *, #screen, #screen *",
        ("section:has(#insights)", "section:has(#screen)"),
    )

    # A reload renders the same elements from the database.
    page.set_viewport_size({"width": WIDTHS["wide"], "height": 1000})
    page.reload()
    assert listed(page, "insights") == insights
    assert listed(page, "screen") == screens

    page.goto(f"{url}/sessions/{session.pk}/history/")
    facts = page.locator(".history-facts").inner_text()
    assert f"{len(rec.insights)} insights ({len(rec.audio)} reported)" in facts
    assert f"{len(rec.screens)} screens shown ({len(rec.visual)} descriptions)" in facts
    assert page.locator(".insight-audio").count() == len(rec.insights)
    assert page.locator(".insight-visual").count() == len(rec.screens)
    assert page.locator(".marker-screen").count() == len(rec.screens)
    shoot(
        page,
        "history",
        "main *",
        (".history-facts", "section:has(.timeline)", ".history-side"),
    )
    assert problems(page.console_messages) == []
    print(  # the figures for the report (pytest -s)
        f"\nsales call: {len(rec.audio)} insights reported, {len(rec.insights)} shown; "
        f"{len(rec.visual)} screen descriptions, {len(rec.screens)} spans shown"
    )
