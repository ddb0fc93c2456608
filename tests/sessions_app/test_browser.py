"""A real person in a real browser against the real server (Daphne, DEBUG off, full CSP)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from django.db import connections

from sessions_app.models import CaptureSession, User
from tests.conftest import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def off_the_browsers_thread[T](work: Callable[[], T]) -> T:
    """Run ORM ``work`` in a thread of its own, closing its connection afterwards.

    While the browser runs, this thread has Playwright's event loop and Django rightly
    refuses ORM calls here; a connection opened anyway would also outlive the test.
    """

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


SCREENSHOT = "/tmp/dashboard.png"


def problems(messages: list[str]) -> list[str]:
    """CSP violations, uncaught errors and failed loads (a missing favicon is one too)."""
    return [
        message
        for message in messages
        if "Content Security Policy" in message
        or message.startswith("pageerror:")
        or message.startswith("Failed to load resource")
    ]


def test_a_person_logs_in_sees_the_empty_state_then_their_session_and_logs_out(
    live_server_url: str, page: Page
) -> None:
    person = off_the_browsers_thread(
        lambda: User.objects.create_user("lena", password=PASSWORD, display_name="Lena Live")
    )

    page.goto(f"{live_server_url}/")
    # Anonymous: the dashboard sends the browser to the login form.
    assert page.url == f"{live_server_url}/accounts/login/?next=/"
    page.get_by_label("Username").fill("lena")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server_url}/")

    assert page.get_by_role("heading", name="No sessions yet").is_visible()
    assert page.get_by_role("button", name="Log out Lena Live").is_visible()

    off_the_browsers_thread(
        lambda: CaptureSession.objects.create(
            owner=person,
            title="Customer onboarding call",
            videodb_id="cap-browser-1",
            status=CaptureSession.Status.ACTIVE,
        )
    )
    page.reload()

    row = page.locator("table.sessions tbody tr")
    assert row.count() == 1
    assert "Customer onboarding call" in row.inner_text()
    assert row.locator(".status-active").inner_text() == "Active"
    assert not page.get_by_role("heading", name="No sessions yet").is_visible()

    # htmx came from our own static files and ran under the CSP.
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("htmx.config.allowEval") is False
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert problems(page.console_messages) == []

    # The primary button stays readable (WCAG AA, 4.5:1) in both colour schemes.
    button = page.locator(".button").first
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        colours = button.evaluate(
            "el => [getComputedStyle(el).color, getComputedStyle(el).backgroundColor]"
        )
        assert contrast(*colours) >= 4.5, (scheme, colours)

    # Logging out (a POST form in the header) ends the session for real.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{live_server_url}/accounts/login/")
    page.goto(f"{live_server_url}/")
    assert page.url == f"{live_server_url}/accounts/login/?next=/"
    assert problems(page.console_messages) == []


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two computed ``rgb(r, g, b)`` colours."""

    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", css)[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_admin_works_under_the_csp(live_server_url: str, page: Page) -> None:
    def data() -> CaptureSession:
        User.objects.create_superuser("ada", password=PASSWORD)
        return CaptureSession.objects.create(
            owner=User.objects.create_user("olivia", password=PASSWORD),
            title="Q3 roadmap review",
            videodb_id="cap-admin-1",
        )

    session = off_the_browsers_thread(data)
    page.goto(f"{live_server_url}/admin/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server_url}/admin/")

    page.goto(f"{live_server_url}/admin/sessions_app/capturesession/{session.pk}/change/")
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Change capture session").is_visible()
    page.goto(f"{live_server_url}/admin/sessions_app/capturesession/")
    page.wait_for_load_state("networkidle")
    page.screenshot(path="/tmp/admin.png", full_page=True)
    assert problems(page.console_messages) == []
