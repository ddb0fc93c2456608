"""Pages: the dashboard, the account pages, the security headers every page carries, and the
health check."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sessions_app.history_views import LIST_PAGE_SIZE as DASHBOARD_PAGE_SIZE
from sessions_app.models import Alert, CaptureSession, RTStream, User
from tests.conftest import PASSWORD

DASHBOARD = reverse("dashboard")
LOGIN = reverse("login")
LOGOUT = reverse("logout")
PASSWORD_CHANGE = reverse("password_change")


def rows(html: str) -> dict[int, list[str]]:
    """The dashboard's session rows: {session pk: [cell text, …]}."""
    found = {}
    for pk, row in re.findall(r'<tr id="session-(\d+)">(.*?)</tr>', html, flags=re.DOTALL):
        cells = re.findall(r"<td(?: [^>]*)?>(.*?)</td>", row, flags=re.DOTALL)
        found[int(pk)] = [re.sub(r"<[^>]+>", " ", cell).strip() for cell in cells]
    return found


# --- the dashboard ------------------------------------------------------------------------


def test_the_dashboard_sends_anonymous_visitors_to_log_in_and_back(client: Client, db) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={DASHBOARD}"


def test_a_user_sees_their_own_sessions_and_never_a_strangers(
    client: Client, owner: User, stranger: User, make_session: Callable[..., CaptureSession]
) -> None:
    mine = make_session(owner, title="Q3 roadmap review", status=CaptureSession.Status.ACTIVE)
    make_session(stranger, title="Acquisition talks (confidential)")
    client.force_login(owner)

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    assert "Q3 roadmap review" in response.text
    assert "Active" in rows(response.text)[mine.pk][1]
    assert "Acquisition talks" not in response.text
    assert list(rows(response.text)) == [mine.pk]


def test_the_dashboard_escapes_session_titles(
    owner_client: Client, owner: User, make_session: Callable[..., CaptureSession]
) -> None:
    make_session(owner, title="<script>alert(1)</script>")
    response = owner_client.get(DASHBOARD)
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_a_user_without_sessions_sees_the_empty_state(
    owner_client: Client, stranger: User, make_session: Callable[..., CaptureSession]
) -> None:
    make_session(stranger)  # somebody else's session does not count as one of mine
    response = owner_client.get(DASHBOARD)
    assert response.status_code == 200
    assert "No sessions yet" in response.text
    assert '<table class="sessions">' not in response.text


def test_a_user_with_sessions_does_not_see_the_empty_state(
    owner_client: Client, meeting: CaptureSession
) -> None:
    response = owner_client.get(DASHBOARD)
    assert "No sessions yet" not in response.text


def test_sessions_are_listed_newest_first(
    owner_client: Client, owner: User, make_session: Callable[..., CaptureSession]
) -> None:
    now = timezone.now()
    old = make_session(owner, created_at=now - timedelta(days=2))
    new = make_session(owner, created_at=now)
    middle = make_session(owner, created_at=now - timedelta(days=1))
    assert list(rows(owner_client.get(DASHBOARD).text)) == [new.pk, middle.pk, old.pk]


@pytest.fixture
def twenty_six_sessions(
    owner: User, make_session: Callable[..., CaptureSession]
) -> list[CaptureSession]:
    now = timezone.now()
    return [
        make_session(owner, created_at=now - timedelta(minutes=n))
        for n in range(DASHBOARD_PAGE_SIZE + 1)
    ]


def test_the_dashboard_shows_25_sessions_a_page(
    owner_client: Client, twenty_six_sessions: list[CaptureSession]
) -> None:
    assert DASHBOARD_PAGE_SIZE == 25
    first = owner_client.get(DASHBOARD)
    assert list(rows(first.text)) == [s.pk for s in twenty_six_sessions[:25]]
    assert "Page 1 of 2" in first.text
    assert 'href="?page=2"' in first.text

    second = owner_client.get(DASHBOARD, {"page": 2})
    assert list(rows(second.text)) == [twenty_six_sessions[25].pk]
    assert "Page 2 of 2" in second.text
    assert 'href="?page=1"' in second.text


def test_one_page_of_sessions_shows_no_pagination(
    owner_client: Client, twenty_six_sessions: list[CaptureSession]
) -> None:
    twenty_six_sessions[-1].delete()
    response = owner_client.get(DASHBOARD)
    assert len(rows(response.text)) == 25
    assert 'class="pagination"' not in response.text


@pytest.mark.parametrize(
    ("value", "page_number"),
    [("abc", 1), ("0", 2), ("-1", 2), ("999", 2), ("2.5", 1), ("", 1), ("1e3", 1)],
)
def test_a_bad_page_number_shows_a_page_instead_of_failing(
    owner_client: Client, twenty_six_sessions: list[CaptureSession], value: str, page_number: int
) -> None:
    response = owner_client.get(DASHBOARD, {"page": value})
    assert response.status_code == 200
    assert f"Page {page_number} of 2" in response.text


def test_each_row_counts_its_streams_and_alerts(
    owner_client: Client,
    owner: User,
    make_session: Callable[..., CaptureSession],
    make_stream: Callable[..., RTStream],
) -> None:
    busy = make_session(owner, title="Busy")
    quiet = make_session(owner, title="Quiet")
    mic = make_stream(busy, "mic:default")
    screen = make_stream(busy, "display:main")
    make_stream(busy, "system_audio:default")
    for n, stream in enumerate([mic, mic, screen, screen]):
        Alert.objects.create(
            session=busy, stream=stream, label="pricing_shared", start_ms=n, end_ms=n + 1
        )
    make_stream(quiet, "mic:default")

    found = rows(owner_client.get(DASHBOARD).text)

    # Columns: title, status, created, duration, streams, alerts, link (the joins must not
    # multiply the counts).
    assert found[busy.pk][4:6] == ["3", "4"]
    assert found[quiet.pk][4:6] == ["1", "0"]


def test_the_time_column_is_the_creation_time_and_says_so(
    owner_client: Client, owner: User, make_session: Callable[..., CaptureSession]
) -> None:
    # A session that never started has no start time: the column must not claim one.
    created = timezone.now().replace(microsecond=0) - timedelta(days=3)
    session = make_session(owner, created_at=created, status=CaptureSession.Status.CREATED)
    html = owner_client.get(DASHBOARD).text
    assert '<th scope="col">Created</th>' in html
    assert "Started" not in html
    assert rows(html)[session.pk][2] == created.strftime("%Y-%m-%d %H:%M")


def test_the_dashboard_costs_the_same_queries_for_one_session_or_a_full_page(
    owner_client: Client,
    owner: User,
    make_session: Callable[..., CaptureSession],
    make_stream: Callable[..., RTStream],
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(DASHBOARD).status_code == 200
        return len(captured)

    make_stream(make_session(owner), "mic:default")
    queries()  # warm
    one = queries()
    for _ in range(DASHBOARD_PAGE_SIZE):
        make_stream(make_session(owner), "mic:default")
    assert queries() == one


def test_the_dashboard_answers_only_get(owner_client: Client) -> None:
    assert owner_client.post(DASHBOARD).status_code == 405
    assert owner_client.put(DASHBOARD).status_code == 405
    assert owner_client.delete(DASHBOARD).status_code == 405


def test_a_session_not_yet_created_in_videodb_says_so(
    owner_client: Client, owner: User, make_session: Callable[..., CaptureSession]
) -> None:
    session = make_session(owner, videodb_id=None)
    assert "not yet created in VideoDB" in rows(owner_client.get(DASHBOARD).text)[session.pk][0]


# --- logging in and out ------------------------------------------------------------------


def logged_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def test_the_login_page_renders_a_form(client: Client, db) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert 'name="password"' in response.text
    assert 'name="csrfmiddlewaretoken"' in response.text


def test_a_wrong_password_shows_an_error_and_does_not_log_in(client: Client, owner: User) -> None:
    response = client.post(LOGIN, {"username": "olivia", "password": "wrong password"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.text
    assert 'role="alert"' in response.text
    assert logged_in_user_id(client) is None
    assert client.get(DASHBOARD).status_code == 302


def test_the_right_password_logs_in_and_lands_on_the_dashboard(client: Client, owner: User) -> None:
    response = client.post(LOGIN, {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    assert logged_in_user_id(client) == str(owner.pk)
    assert client.get(DASHBOARD).status_code == 200


def test_logging_in_returns_to_the_page_that_asked(client: Client, owner: User) -> None:
    response = client.post(
        LOGIN, {"username": "olivia", "password": PASSWORD, "next": PASSWORD_CHANGE}
    )
    assert response["Location"] == PASSWORD_CHANGE


def test_logging_in_never_redirects_to_another_site(client: Client, owner: User) -> None:
    response = client.post(
        LOGIN, {"username": "olivia", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == DASHBOARD


def test_the_login_form_keeps_next_from_the_query_string(client: Client, db) -> None:
    response = client.get(LOGIN, {"next": PASSWORD_CHANGE})
    assert f'name="next" value="{PASSWORD_CHANGE}"' in response.text


def test_a_logged_in_user_visiting_login_goes_to_the_dashboard(owner_client: Client) -> None:
    response = owner_client.get(LOGIN)
    assert response.status_code == 302
    assert response["Location"] == DASHBOARD


def test_logout_is_post_only(owner_client: Client, owner: User) -> None:
    assert owner_client.get(LOGOUT).status_code == 405
    assert logged_in_user_id(owner_client) == str(owner.pk)


def test_logout_logs_out(owner_client: Client) -> None:
    response = owner_client.post(LOGOUT)
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert logged_in_user_id(owner_client) is None
    assert owner_client.get(DASHBOARD).status_code == 302


def test_the_dashboard_offers_a_logout_form_that_posts(owner_client: Client) -> None:
    html = owner_client.get(DASHBOARD).text
    assert re.search(
        rf'<form method="post" action="{LOGOUT}"[^>]*>\s*<input type="hidden" '
        r'name="csrfmiddlewaretoken"',
        html,
    )


def test_logout_requires_the_csrf_token(owner: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(LOGOUT).status_code == 403
    assert client.get(DASHBOARD).status_code == 200


def test_login_requires_the_csrf_token(owner: User) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(LOGIN, {"username": "olivia", "password": PASSWORD})
    assert response.status_code == 403


# --- changing one's password -------------------------------------------------------------

NEW_PASSWORD = "a much longer new passphrase 42"


def test_the_password_change_page_needs_a_login(client: Client, db) -> None:
    response = client.get(PASSWORD_CHANGE)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={PASSWORD_CHANGE}"


def test_changing_the_password_works_and_the_new_one_logs_in(
    owner_client: Client, owner: User
) -> None:
    response = owner_client.post(
        PASSWORD_CHANGE,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain == [(reverse("password_change_done"), 302)]
    assert "Password changed" in response.text
    # Still logged in: the session follows the new password hash.
    assert owner_client.get(DASHBOARD).status_code == 200

    owner_client.post(LOGOUT)
    wrong = owner_client.post(LOGIN, {"username": "olivia", "password": PASSWORD})
    assert wrong.status_code == 200
    assert logged_in_user_id(owner_client) is None
    right = owner_client.post(LOGIN, {"username": "olivia", "password": NEW_PASSWORD})
    assert right.status_code == 302
    assert logged_in_user_id(owner_client) == str(owner.pk)


def test_a_wrong_old_password_changes_nothing_and_says_why(
    owner_client: Client, owner: User
) -> None:
    response = owner_client.post(
        PASSWORD_CHANGE,
        {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.text
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_a_weak_new_password_is_refused(owner_client: Client, owner: User) -> None:
    response = owner_client.post(
        PASSWORD_CHANGE,
        {"old_password": PASSWORD, "new_password1": "12345678", "new_password2": "12345678"},
    )
    assert response.status_code == 200
    assert "This password is too common" in response.text
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


# --- security headers on every page ------------------------------------------------------


@pytest.fixture
def html_pages(client: Client, owner: User, meeting: CaptureSession) -> dict[str, object]:
    """Every HTML page a person sees, fetched the way they would reach it."""
    anonymous = {"login": client.get(LOGIN)}
    failed = {"login with an error": client.post(LOGIN, {"username": "x", "password": "y"})}
    client.force_login(owner)
    pages = {
        "dashboard": client.get(DASHBOARD),
        "dashboard page 2": client.get(DASHBOARD, {"page": "2"}),
        "password change": client.get(PASSWORD_CHANGE),
        "password changed": client.get(reverse("password_change_done")),
        "alert rules": client.get(reverse("rule-list")),
        "new session": client.get(reverse("session-new")),
    }
    return anonymous | failed | pages


PAGE_NAMES = [
    "login",
    "login with an error",
    "dashboard",
    "dashboard page 2",
    "password change",
    "password changed",
    "alert rules",
    "new session",
]


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_has_a_nonce_based_csp_without_unsafe_inline(html_pages, name: str) -> None:
    response = html_pages[name]
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header
    directives = csp_directives(header)
    nonces = [v for v in directives["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1
    assert "'self'" in directives["script-src"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_the_htmx_script_tag_carries_the_csp_nonce(html_pages, name: str) -> None:
    response = html_pages[name]
    [nonce] = re.findall(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    [tag] = re.findall(r"<script [^>]*htmx[^>]*>", response.text)
    assert f'nonce="{nonce}"' in tag
    assert re.search(r'src="/static/django_htmx/htmx-2\.min\.[0-9a-f]{12}\.js"', tag)
    # No script of ours runs without the nonce.
    for script in re.findall(r"<script\b[^>]*>", response.text):
        assert f'nonce="{nonce}"' in script, script


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_page_refuses_framing_and_mime_sniffing(html_pages, name: str) -> None:
    response = html_pages[name]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_each_response_gets_a_fresh_nonce(owner_client: Client) -> None:
    first = owner_client.get(DASHBOARD)["Content-Security-Policy"]
    second = owner_client.get(DASHBOARD)["Content-Security-Policy"]
    assert re.findall(r"'nonce-[^']+'", first) != re.findall(r"'nonce-[^']+'", second)


def test_the_dashboard_is_never_cached(owner_client: Client) -> None:
    # It shows one person's live sessions: no shared cache may keep it, and the back button
    # after logging out must not bring it back from the browser's cache.
    cache_control = owner_client.get(DASHBOARD)["Cache-Control"]
    assert "private" in cache_control
    assert "no-store" in cache_control


# --- the health check --------------------------------------------------------------------


def test_the_health_check_reports_every_part_ok(client: Client, db) -> None:
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


def test_the_health_check_needs_no_login(client: Client, db) -> None:
    assert client.get("/healthz").status_code == 200


def test_the_health_check_answers_only_get(client: Client, db) -> None:
    assert client.post(reverse("healthz")).status_code == 405
