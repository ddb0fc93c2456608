"""A real person in a real browser against the real server (Daphne, DEBUG off, full CSP)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sessions_app.models import CaptureSession, User
from tests.browser import contrast, orm, problems
from tests.conftest import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


SCREENSHOT = "/tmp/dashboard.png"


def test_a_person_logs_in_sees_the_empty_state_then_their_session_and_logs_out(
    live_server_url: str, page: Page
) -> None:
    person = orm(
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

    orm(
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


def test_the_admin_works_under_the_csp(live_server_url: str, page: Page) -> None:
    def data() -> CaptureSession:
        User.objects.create_superuser("ada", password=PASSWORD)
        return CaptureSession.objects.create(
            owner=User.objects.create_user("olivia", password=PASSWORD),
            title="Q3 roadmap review",
            videodb_id="cap-admin-1",
        )

    session = orm(data)
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
