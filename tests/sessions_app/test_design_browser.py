"""The shared look in a real browser (Daphne, DEBUG off, full CSP): the navigation on the
smallest phone, the current page's mark, keyboard focus, and copy buttons."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from sessions_app.models import User
from tests.browser import contrast, log_in, orm, problems
from tests.conftest import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

STYLE = "el => { const s = getComputedStyle(el); return [s.color, s.backgroundColor]; }"


@pytest.fixture
def person(live_server_url: str) -> User:
    return orm(
        lambda: User.objects.create_user(
            "nora", password=PASSWORD, display_name="Nora Navigator", is_staff=True
        )
    )


def test_the_navigation_fits_a_360_px_phone_and_marks_the_current_page(
    live_server_url: str, page: Page, person: User
) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    log_in(page, live_server_url, "nora", "/rules/")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=f"/tmp/forms-nav-{scheme}-360.png")
        # Nothing scrolls sideways, and every link and the log-out button are on screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        header = page.locator(".site-header")
        for control in header.locator("a, button").all():
            box = control.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 360, control.inner_text()
        # The current page stands out from the other links, and stays readable.
        here = page.get_by_role("link", name="Alert rules")
        other = page.get_by_role("link", name="Search")
        assert here.get_attribute("aria-current") == "page"
        here_colour, here_background = here.evaluate(STYLE)
        other_colour, other_background = other.evaluate(STYLE)
        assert here_background != other_background
        assert here_colour != other_colour
        assert contrast(here_colour, here_background) >= 4.5, scheme
        # No underline: the nav does not look like a list of default links.
        assert "underline" not in other.evaluate("el => getComputedStyle(el).textDecorationLine")
    # The button keeps its full name for screen readers though the phone shows "Log out".
    assert page.get_by_role("button", name="Log out Nora Navigator").is_visible()
    assert problems(page.console_messages) == []


def test_keyboard_focus_shows_one_ring_on_links_buttons_and_fields(
    live_server_url: str, page: Page, person: User
) -> None:
    log_in(page, live_server_url, "nora", "/rules/new/")
    outline = "el => [getComputedStyle(el).outlineStyle, getComputedStyle(el).outlineWidth]"
    page.keyboard.press("Tab")  # the skip link comes first and shows itself
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.is_visible() and skip.bounding_box()["y"] >= 0
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate_handle("document.activeElement")
        tag = focused.evaluate("el => el.localName")
        style, width = focused.evaluate(outline)
        # The project's ring (3 px solid), not the browser's thin default or nothing.
        assert (style, width) == ("solid", "3px"), f"<{tag}> shows {style} {width} focus"
        if focused.evaluate("el => el.id") == "id_is_enabled":
            break
    else:
        pytest.fail("Tab never reached the rule form's checkbox")


def test_a_copy_button_copies_its_target_and_says_so_politely(
    live_server_url: str, chromium, person: User
) -> None:
    context = chromium.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    log_in(page, live_server_url, "nora", "/")
    # A value and its button as a page would write them (DevTools' evaluate is not subject
    # to the page's CSP; copy.js, loaded by base.html, is).
    page.evaluate(
        """() => {
        const box = document.createElement('div');
        box.className = 'copy-field';
        box.innerHTML = '<input id="link" readonly value="https://copilot.example/s/abc">'
          + '<button type="button" data-copy-target="#link" data-copy-label="Share link">'
          + 'Copy</button>';
        document.querySelector('main').prepend(box);
      }"""
    )
    button = page.get_by_role("button", name="Copy", exact=True)
    button.focus()
    page.keyboard.press("Enter")
    announcer = page.locator("#copy-announcer")
    assert announcer.get_attribute("role") == "status"
    # Polled through evaluate: wait_for_function evaluates a string, which the CSP refuses.
    deadline = time.monotonic() + 10
    while not page.evaluate("document.getElementById('copy-announcer').textContent !== ''"):
        assert time.monotonic() < deadline, "nothing was announced"
        page.wait_for_timeout(50)
    assert announcer.text_content() == "Share link copied"
    assert page.evaluate("navigator.clipboard.readText()") == "https://copilot.example/s/abc"
    assert button.get_attribute("data-copied") == ""
    # The tick is decoration: the button's name stays "Copy".
    assert button.evaluate("el => el.textContent") == "Copy"
    assert problems(messages) == []
    context.close()
