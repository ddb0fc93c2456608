"""After the meeting, in a real browser (real Daphne, DEBUG off, full CSP, Debian's Chromium),
on a phone (390 px) and a desktop (1440 px): the recap's evidence opens its moment, the
follow-up email copies (with the clipboard, and without it), and an action item raised in
two meetings of a series is listed once and marked done in place."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from sessions_app.models import CaptureSession, RTStream, User
from tests.browser import log_in, orm, problems
from tests.conftest import PASSWORD
from tests.sessions_app.conftest import say
from tests.sessions_app.intelligence.kept_briefs import asked, brief, decided, summed_up, to_do

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

WIDTHS = {"phone": 390, "desktop": 1440}


def two_meetings_of_a_series() -> dict[str, object]:
    """Last week's planning and today's, each with a final brief; today's raises last week's
    open task again."""
    person = User.objects.create_user("mara", password=PASSWORD, display_name="Mara Lind")
    made = {}
    for name, days_ago in (("earlier", 7), ("later", 0)):
        start = timezone.now() - timedelta(days=days_ago, hours=2)
        session = CaptureSession.objects.create(
            owner=person,
            title="Launch planning",
            series="Launch",
            videodb_id=f"cap-recap-{name}",
            status=CaptureSession.Status.STOPPED,
            started_at=start,
            ended_at=start + timedelta(minutes=45),
            created_at=start,
        )
        mic = RTStream.objects.create(
            session=session, videodb_id=f"rts-recap-{name}", name="mic:default", kind="mic",
            media_types=["audio"],
        )  # fmt: skip
        base = int(start.timestamp() * 1000)
        lines = [
            say(mic, f"Line {n}: we went through item {n} of the plan", base + n * 20_000,
                final=True)
            for n in range(60)
        ]  # fmt: skip
        made[name] = (session, lines)
    earlier, early_lines = made["earlier"]
    later, lines = made["later"]
    brief(earlier, final=True)
    first = to_do(earlier, "Book the launch venue", early_lines[5], owner="Ana", due="Friday")
    brief(later, final=True)
    summed_up(later, "The launch plan was reviewed end to end", lines[1], lines[30])
    decided(later, "The launch moves to May 3", lines[50])
    to_do(later, "Book the launch venue", lines[52], owner="Ana", follows=first)
    to_do(later, "Draft the press release", lines[55], owner="Bo", due="next week")
    asked(later, "Which city hosts the launch?", lines[57])
    return {"later": later, "decision_line": lines[50], "first": first}


def _context(chromium: Browser, width: int, **options: object):
    context = chromium.new_context(viewport={"width": width, "height": 900}, **options)
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.on("pageerror", lambda error: page.console_messages.append(f"pageerror: {error}"))
    return context, page


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", list(WIDTHS))
def test_the_recap_email_and_action_items_work_on_a_phone_and_a_desktop(
    live_server_url: str, chromium: Browser, size: str
) -> None:
    from playwright.sync_api import expect

    stage = orm(two_meetings_of_a_series)
    later, line = stage["later"], stage["decision_line"]
    history = f"/sessions/{later.pk}/history/"
    context, page = _context(
        chromium, WIDTHS[size], permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        log_in(page, live_server_url, "mara", history)
        recap = page.locator("section.recap")
        assert "The launch moves to May 3" in recap.inner_text()
        assert _fits(page)
        page.screenshot(path=f"/tmp/recap-{size}.png", full_page=False)

        # The decision's evidence opens its moment: the line is marked and on screen.
        recap.locator(".recap-point", has_text="May 3").locator("a.cite").click()
        page.wait_for_url(f"**{history}?at={line.start_ms}#line-{line.pk}")
        marked = page.locator(f"#line-{line.pk}")
        assert marked.get_attribute("data-jump") == "true"
        assert marked.is_visible() and page.evaluate("window.scrollY") > 300

        page.goto(f"{live_server_url}{history}")
        page.get_by_role("button", name="Copy").click()
        page.get_by_role("status").filter(has_text="Copied").wait_for()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("Subject: Follow-up: Launch planning (")
        assert "- Book the launch venue (owner: Ana)" in copied
        assert copied.endswith("Best regards,\nMara Lind\n")
        page.locator(".follow-up").scroll_into_view_if_needed()
        page.screenshot(path=f"/tmp/recap-email-{size}.png", full_page=False)

        # The task raised in both meetings is listed once, with the later mention under it.
        page.goto(f"{live_server_url}/actions/")
        rows = page.locator(".action-row")
        assert rows.count() == 2
        venue = rows.filter(has_text="Book the launch venue")
        assert "Raised again in Launch planning" in venue.locator(".mentions").inner_text()
        assert _fits(page)
        page.screenshot(path=f"/tmp/actions-{size}.png", full_page=True)

        venue.get_by_role("button", name="Mark done").click()
        page.locator(f"#action-{stage['first'].pk}.done").wait_for()
        assert venue.get_by_role("button", name="Reopen").is_visible()
        page.get_by_label("Status").select_option("done")
        expect(rows).to_have_count(1)
        assert "Book the launch venue" in page.locator("#action-list").inner_text()
        assert "status=done" in page.url
        assert problems(page.console_messages) == []
    finally:
        context.close()


def test_without_the_clipboard_api_copy_selects_the_email(
    live_server_url: str, chromium: Browser
) -> None:
    stage = orm(two_meetings_of_a_series)
    context, page = _context(chromium, WIDTHS["phone"])
    # As on a page served over plain HTTP to another host: no asynchronous clipboard.
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    try:
        log_in(page, live_server_url, "mara", f"/sessions/{stage['later'].pk}/history/")
        page.get_by_role("button", name="Copy").click()
        page.locator("#email-copied").filter(has_text="Copied").wait_for()
        selected = page.evaluate(
            "(() => { const t = document.getElementById('follow-up-email');"
            " return [t.selectionStart, t.selectionEnd, t.value.length]; })()"
        )
        assert selected[0] == 0 and selected[1] == selected[2] > 100
        assert problems(page.console_messages) == []
    finally:
        context.close()
