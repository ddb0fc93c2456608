"""The live page in a real browser against a real Daphne (DEBUG off, full CSP).

Items are stored the way the relay stores them (numbered in the session's sequence) from
this process. Pushing them needs the channel layer Daphne listens on: Redis, on the
PostgreSQL + Redis pass, so the tests that push are marked ``services``. The others need
no push: the page renders from the database, and a browser that reconnects catches up
from the database too.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from sessions_app.live import broadcast, interim
from sessions_app.models import (
    CaptureSession,
    RTStream,
    StreamOperation,
    TranscriptSegment,
    User,
)
from sessions_app.viewers import sharing
from tests.browser import contrast, log_in, orm, problems
from tests.conftest import PASSWORD
from tests.sessions_app.conftest import HOSTILE, fire, say

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

SCREENSHOT = "/tmp/live.png"
AT_BOTTOM = (
    "(f => f.scrollHeight - f.scrollTop - f.clientHeight < 48)"
    "(document.getElementById('transcript'))"
)


def push(session: CaptureSession, *items) -> None:
    """What the relay does after storing: publish each item's fragment to the session."""
    orm(lambda: broadcast.publish(session, [broadcast.message(item, session) for item in items]))


def push_interim(stream: RTStream, text: str, start_ms: int) -> None:
    """What the relay does with interim text: keep it for pages that connect mid-line, and
    push it to the pages open now (sessions_app/relay.py)."""

    def work() -> None:
        loaded = RTStream.objects.select_related("session").get(pk=stream.pk)
        update = broadcast.interim_message(loaded, text=text, start_ms=start_ms)
        async_to_sync(interim.show)(loaded.session_id, loaded.pk, start_ms, update["html"])
        broadcast.publish(loaded.session, [update])

    orm(work)


def until(page: Page, script: str, timeout: float = 10.0) -> None:
    """Poll a JavaScript expression until it is true. (Playwright's wait_for_function polls
    through eval, which the page's CSP rightly refuses; evaluate goes through DevTools.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {script}")
        page.wait_for_timeout(50)


def wait_live(page: Page) -> None:
    page.wait_for_selector('#connection[data-state="live"]', timeout=10_000)
    # The first resume has been answered: the page is in step with the server.
    page.wait_for_selector("#live-synced[data-through]", state="attached")


def transcript(page: Page) -> list[tuple[str, str]]:
    """(id, text) of each line on the page, in order."""
    lines = page.eval_on_selector_all(
        "#transcript > li[data-order]",
        "els => els.map(e => [e.id, e.querySelector('.text').textContent])",
    )
    return [tuple(line) for line in lines]


@pytest.fixture
def stage(live_server_url: str) -> dict:
    """An owner with an active session of two audio channels, and one line already said."""

    def build() -> dict:
        owner = User.objects.create_user("olivia", password=PASSWORD, display_name="Olivia")
        session = CaptureSession.objects.create(
            owner=owner,
            title="Q3 roadmap review",
            videodb_id="cap-live-1",
            status=CaptureSession.Status.ACTIVE,
            started_at=timezone.now() - timedelta(minutes=3),
        )
        mic = RTStream.objects.create(
            session=session, videodb_id="rts-mic", name="mic:default", kind="mic",
            media_types=["audio"],
        )  # fmt: skip
        others = RTStream.objects.create(
            session=session, videodb_id="rts-sys", name="system_audio:default",
            kind="system_audio", media_types=["audio"],
        )  # fmt: skip
        start = int(session.started_at.timestamp() * 1000)
        first = say(mic, "Welcome to the roadmap review", start + 1_000, final=True)
        return {"owner": owner, "session": session, "mic": mic, "others": others,
                "start": start, "first": first}  # fmt: skip

    return orm(build)


def test_the_page_connects_shows_the_stored_state_escaped_and_warns_of_silence(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session, mic, others, start = stage["session"], stage["mic"], stage["others"], stage["start"]

    def hostile_and_quiet() -> None:
        say(others, HOSTILE, start + 2_000, final=True)
        fire(mic, "pricing_discussed", start + 3_000, text="A price was named")

    def quiet_for_a_while() -> None:
        silence = getattr(settings, "LIVE_SILENCE_WARNING_SECONDS", 20)
        # The system audio was last heard a little less than the threshold ago.
        RTStream.objects.filter(pk=others.pk).update(
            last_event_received_at=timezone.now() - timedelta(seconds=silence - 4)
        )

    orm(hostile_and_quiet)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # Signed in first (hashing a password can take seconds on a busy machine), so that the
    # four seconds before the channel counts as silent are the page's own.
    log_in(page, live_server_url, "olivia", "/")
    orm(quiet_for_a_while)
    page.goto(f"{live_server_url}/sessions/{session.pk}/")
    wait_live(page)

    assert page.locator("#connection").inner_text() == "Connected"
    assert page.locator("#live-status .phase-pill").inner_text() == "Live"
    lines = transcript(page)
    assert [text for _, text in lines] == ["Welcome to the roadmap review", HOSTILE]
    # Markup from VideoDB is text: no image, no htmx attribute made it into the DOM.
    assert page.locator("#transcript img, #transcript [hx-get]").count() == 0

    health = page.locator(f"#health-{others.pk}")
    assert health.get_attribute("data-state") == "live"
    page.wait_for_selector(f'#health-{others.pk}[data-state="silent"]', timeout=10_000)
    assert re.search(r"silent for \d+ s", health.inner_text())
    warning = page.locator("#health-warning")
    assert warning.is_visible() and "Others" in warning.inner_text()
    assert page.locator(f'#health-{mic.pk}[data-state="silent"]').count() == 0

    # The alert timeline: time into the meeting, the rule's name (not its label), the why.
    stored_alert = page.locator("#alerts .alert-item").first
    assert stored_alert.locator(".offset").inner_text() == "00:03"
    assert stored_alert.locator(".alert-title").inner_text() == "Pricing discussed"
    assert "A price was named" in stored_alert.inner_text()
    assert "pricing_discussed" not in page.locator("#alerts").inner_text()
    assert "confidence 92%" in page.locator("#alerts").inner_text()

    page.screenshot(path=SCREENSHOT, full_page=True)
    assert dialogs == []  # onerror=alert(1) never ran
    assert problems(page.console_messages) == []

    # Readable in both colour schemes (WCAG AA, 4.5:1) where the live view adds colour.
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for selector in ("#connection", ".phase-pill", ".alert-title", "#health-warning",
                         f"#health-{others.pk} .health-state", ".line .offset"):  # fmt: skip
            colours = page.locator(selector).first.evaluate(
                "el => { let bg = el, c; while (bg && ((c = getComputedStyle(bg).backgroundColor)"
                " === 'rgba(0, 0, 0, 0)' || c === 'transparent')) bg = bg.parentElement;"
                " return [getComputedStyle(el).color, c]; }"
            )
            assert contrast(*colours) >= 4.5, (scheme, selector, colours)


def test_after_a_network_drop_the_page_resumes_without_gaps_or_duplicates(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session, mic, others, start = stage["session"], stage["mic"], stage["others"], stage["start"]
    log_in(page, live_server_url, "olivia", f"/sessions/{session.pk}/")
    wait_live(page)

    page.context.set_offline(True)
    page.wait_for_selector('#connection[data-state="offline"]', timeout=10_000)

    def meanwhile() -> list:
        """What happens while the browser is away: a line goes interim → final, another
        stays interim, an earlier one arrives late, an alert fires."""
        said = [
            say(others, "We could", start + 5_000),
            say(others, "We could ship on Friday", start + 5_000, final=True),
            say(mic, "Agreed", start + 7_000),
            say(mic, "Late line", start + 4_000, final=True),
            fire(mic, "deadline", start + 7_500),
        ]
        if settings.REDIS_URL:  # the relay publishes; a browser that is away misses them
            broadcast.publish(session, [broadcast.message(item, session) for item in said])
        return said

    said = orm(meanwhile)
    page.context.set_offline(False)
    wait_live(page)
    page.wait_for_selector(f"#alert-{said[-1].pk}", state="attached")

    lines = transcript(page)
    ids = [line_id for line_id, _ in lines]
    assert len(ids) == len(set(ids)), "a line is on the page twice"
    assert lines == [
        (f"seg-{stage['first'].pk}", "Welcome to the roadmap review"),
        (f"seg-{said[3].pk}", "Late line"),
        (f"seg-{said[1].pk}", "We could ship on Friday"),
        (f"seg-{said[2].pk}", "Agreed"),
    ]
    assert page.locator("#transcript > li.interim").count() == 1  # "Agreed" is still interim
    # The alert that fired while away is raised once the page is back, and listed.
    assert page.get_by_role("alert").filter(has_text="Deadline").is_visible()
    assert "Deadline" in page.locator(f"#alert-{said[-1].pk}").inner_text()
    assert problems(page.console_messages) == []


@pytest.mark.services
def test_pushed_interim_text_is_replaced_by_the_final_and_shown_to_a_viewer_mid_line(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session, mic, others, start = stage["session"], stage["mic"], stage["others"], stage["start"]
    log_in(page, live_server_url, "olivia", f"/sessions/{session.pk}/")
    wait_live(page)

    # Interim text is pushed as the relay pushes it (never stored): one element per stream.
    push_interim(others, "So the", start + 9_000)
    line = page.locator(f"#interim-{others.pk}")
    line.wait_for()
    assert "interim" in line.get_attribute("class")
    assert line.locator(".speaker").inner_text() == "Others"
    push_interim(others, "So the plan", start + 9_000)
    until(page, f"document.getElementById('interim-{others.pk}').textContent.includes('plan')")
    assert page.locator("#transcript > li.interim").count() == 1

    # A viewer who (re)connects mid-line is shown the line as it stands.
    page.reload()
    wait_live(page)
    page.locator(f"#interim-{others.pk}").wait_for(state="attached")
    assert page.locator(f"#interim-{others.pk} .text").inner_text() == "So the plan"

    # The stored final replaces it; the relay forgets the interim (pages connecting later).
    final = orm(lambda: say(others, "So the plan is to ship", start + 9_000, final=True))
    orm(lambda: async_to_sync(interim.forget)(session.pk, others.pk))
    push(session, final)
    page.locator(f"#seg-{final.pk}").wait_for()
    until(page, f"!document.getElementById('interim-{others.pk}')")
    push(session, final)  # the same message twice changes nothing
    push_interim(others, "So the pl", start + 9_000)  # nor does a late interim of that line
    later = orm(lambda: say(mic, "Noted", start + 12_000, final=True))
    push(session, later)
    page.locator(f"#seg-{later.pk}").wait_for()

    assert transcript(page) == [
        (f"seg-{stage['first'].pk}", "Welcome to the roadmap review"),
        (f"seg-{final.pk}", "So the plan is to ship"),
        (f"seg-{later.pk}", "Noted"),
    ]
    assert page.locator("#transcript > li.interim").count() == 0

    # A screen reader hears finished lines, once each, never the interim words: the list is
    # not a live region, a polite announcer is.
    assert page.locator("#transcript").get_attribute("aria-live") is None
    until(page, "document.getElementById('live-announcer').textContent.includes('Noted')")
    heard = page.locator("#live-announcer").text_content()
    assert "Others: So the plan is to ship" in heard and "So the plan " + "Others" not in heard
    assert heard.count("So the plan") == 1

    # The reader scrolls up: new lines no longer pull the transcript down, a button offers to.
    def chatter() -> list:
        return [say(mic, f"Line {n}", start + 13_000 + n * 1_000, final=True) for n in range(40)]

    push(session, *orm(chatter))
    page.locator("#transcript > li[data-order]").nth(42).wait_for(state="attached")
    until(page, AT_BOTTOM)
    page.locator("#transcript").evaluate(
        "f => { f.scrollTop = 0; f.dispatchEvent(new Event('scroll')); }"
    )
    newest = orm(lambda: say(mic, "Are we done?", start + 60_000, final=True))
    push(session, newest)
    page.locator(f"#seg-{newest.pk}").wait_for(state="attached")
    jump = page.get_by_role("button", name="New lines below")
    jump.wait_for()
    assert page.locator("#transcript").evaluate("f => f.scrollTop") == 0
    jump.click()
    until(page, AT_BOTTOM)
    assert jump.is_hidden()

    alert = orm(lambda: fire(others, "shipping_date", start + 9_500, text="Friday"))
    push(session, alert)
    # A pushed alert is a toast for the moment (an assertive live region), then stays listed.
    toast = page.locator("#alert-toasts[role=alert] .toast").filter(has_text="Shipping date")
    toast.wait_for()
    assert "Alert at 00:09" in toast.inner_text() and "Friday" in toast.inner_text()
    assert "Shipping date" in page.locator(f"#alert-{alert.pk}").inner_text()
    toast.get_by_role("button", name="Dismiss alert").click()
    toast.wait_for(state="detached")

    # The owner renames the system audio from the transcript's card: every line of it, and
    # its health row, follow.
    page.get_by_text("Name speakers").click()
    form = page.locator(f"#speaker-form-{others.pk}")
    form.get_by_role("textbox").fill("Customer team")
    form.get_by_role("button", name="Rename").click()
    until(
        page,
        f"[...document.querySelectorAll('.speaker[data-stream=\"{others.pk}\"]')]"
        ".every(e => e.textContent === 'Customer team')",
    )
    assert problems(page.console_messages) == []


@pytest.mark.services
def test_a_viewer_watches_read_only_and_is_disconnected_when_the_link_is_revoked(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session, mic, start = stage["session"], stage["mic"], stage["start"]
    link = orm(lambda: sharing.create_link(session, stage["owner"]))
    page.goto(f"{live_server_url}/s/{link.token}/")
    wait_live(page)
    assert page.locator("form").count() == 0  # nothing to change, not even a log-out
    segment = orm(lambda: say(mic, "For our guests", start + 20_000, final=True))
    push(session, segment)
    page.locator(f"#seg-{segment.pk}").wait_for()

    def revoke() -> None:
        sharing.revoke(link)
        broadcast.close_sockets(session.pk, share_link_id=link.pk)

    orm(revoke)
    page.wait_for_selector('#connection[data-state="closed"]', timeout=10_000)
    assert "no longer" in page.locator("#connection").inner_text()
    assert problems(page.console_messages) == []


def test_a_viewer_whose_link_is_revoked_while_away_stops_reconnecting(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session = stage["session"]
    link = orm(lambda: sharing.create_link(session, stage["owner"]))
    page.goto(f"{live_server_url}/s/{link.token}/")
    wait_live(page)
    page.context.set_offline(True)
    page.wait_for_selector('#connection[data-state="offline"]')
    orm(lambda: sharing.revoke(link))  # no socket open to close: it is refused on return
    page.context.set_offline(False)
    page.wait_for_selector('#connection[data-state="closed"]', timeout=20_000)
    assert "no longer available" in page.locator("#connection").inner_text()
    assert page.locator("#live-socket").count() == 0  # nothing left to reconnect


@pytest.mark.services
def test_the_open_page_turns_into_the_ended_meeting_without_a_reload(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session = stage["session"]
    orm(
        lambda: StreamOperation.objects.create(
            stream=stage["mic"],
            kind="transcript",
            key="transcript",
            state="started",
            started_at=timezone.now(),
        )
    )
    log_in(page, live_server_url, "olivia", f"/sessions/{session.pk}/")
    wait_live(page)
    assert page.locator("#handoff").is_visible()  # folded, below the live view
    assert page.locator("#session-status .chip", has_text="Transcript").is_visible()
    page.evaluate("window.stillTheSamePage = true")

    def end() -> None:
        CaptureSession.objects.filter(pk=session.pk).update(
            status=CaptureSession.Status.EXPORTED, ended_at=timezone.now()
        )
        session.refresh_from_db()
        broadcast.publish_state(session)

    orm(end)
    page.wait_for_selector("#live-status[data-phase='ended']", timeout=10_000)
    assert page.locator("#live-status .phase-pill").inner_text() == "Ended"
    assert page.get_by_role("link", name="Read the recap").is_visible()
    # No live pill, no hand-off, no AI badges: the page is the ended meeting's.
    assert page.locator("#connection").is_hidden()
    assert page.locator("#handoff").is_hidden()
    page.wait_for_selector("#session-status .chip", state="detached", timeout=10_000)
    assert "recorded" in page.locator("#session-status").inner_text()
    assert page.evaluate("window.stillTheSamePage") is True
    # Said once to a screen reader (a polite live region, batched).
    until(page, "document.getElementById('live-announcer').textContent.includes('has ended')")
    assert problems(page.console_messages) == []


@pytest.mark.services
def test_a_push_lost_on_the_way_is_asked_for_and_shown_without_a_reload(
    live_server_url: str, page: Page, stage: dict
) -> None:
    # After a Redis outage one publish failed for good: the page saw the next number, never
    # the lost one, and showed 66 of 67 items until a reload.
    session, mic, start = stage["session"], stage["mic"], stage["start"]
    log_in(page, live_server_url, "olivia", f"/sessions/{session.pk}/")
    wait_live(page)
    page.evaluate("document.body.dataset.sameLoad = 'yes'")  # gone if the page reloads

    lost = orm(lambda: say(mic, "The line whose push was lost", start + 2_000, final=True))
    after = orm(lambda: say(mic, "The line after it", start + 3_000, final=True))
    push(session, after)
    page.wait_for_selector(f"#seg-{after.pk}", state="attached")
    assert page.locator(f"#seg-{lost.pk}").count() == 0  # not yet: the gap is still open

    page.wait_for_selector(f"#seg-{lost.pk}", state="attached", timeout=8_000)
    assert page.evaluate("document.body.dataset.sameLoad") == "yes"
    assert [text for _, text in transcript(page)] == [
        "Welcome to the roadmap review",
        "The line whose push was lost",
        "The line after it",
    ]
    assert problems(page.console_messages) == []


def test_after_a_long_absence_the_page_catches_up_page_by_page_without_a_reload(
    live_server_url: str, page: Page, stage: dict
) -> None:
    session, mic, start = stage["session"], stage["mic"], stage["start"]
    log_in(page, live_server_url, "olivia", f"/sessions/{session.pk}/")
    wait_live(page)
    page.evaluate("document.body.dataset.sameLoad = 'yes'")
    page.context.set_offline(True)
    page.wait_for_selector('#connection[data-state="offline"]', timeout=10_000)

    def a_long_meeting_meanwhile() -> int:
        """More lines than one replay holds (broadcast.REPLAY_PAGE, and the 2,000 a reply
        held before): stored at once, numbered as the relay numbers them."""
        session.refresh_from_db()
        first = session.last_seq + 1
        count = 2_100
        TranscriptSegment.objects.bulk_create(
            TranscriptSegment(
                session=session, stream=mic, seq=first + n, is_final=True,
                start_ms=start + 10_000 + 1_000 * n, end_ms=start + 10_900 + 1_000 * n,
                text=f"Line {n + 1} said while away",
            )
            for n in range(count)
        )  # fmt: skip
        CaptureSession.objects.filter(pk=session.pk).update(last_seq=first + count - 1)
        return first + count - 1

    last = orm(a_long_meeting_meanwhile)
    page.context.set_offline(False)
    page.wait_for_selector(f'#live-synced[data-through="{last}"]', state="attached", timeout=30_000)
    assert page.evaluate("document.body.dataset.sameLoad") == "yes"
    lines = transcript(page)
    assert len(lines) == len({line_id for line_id, _ in lines}) == 2_101
    assert lines[-1][1] == "Line 2100 said while away"
