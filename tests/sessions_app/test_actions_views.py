"""The action-items page and marking an item done: who sees what, who may mark, and what
each answer looks like (a page, an htmx row, a clear refusal)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import BriefItem, CaptureSession
from tests.sessions_app.conftest import HOSTILE, say
from tests.sessions_app.intelligence.kept_briefs import decided, to_do
from tests.sessions_app.watching import GroupWatch

pytestmark = pytest.mark.django_db

ACTIONS = "/actions/"


@pytest.fixture
def task(meeting, mic) -> BriefItem:
    start = timezone.now() - timedelta(minutes=30)
    CaptureSession.objects.filter(pk=meeting.pk).update(started_at=start, series="Roadmap")
    meeting.refresh_from_db()
    line = say(mic, "Ana sends the deck tomorrow", int(start.timestamp() * 1000) + 125_000,
               final=True)  # fmt: skip
    return to_do(meeting, "Send the deck", line, owner="Ana", due="tomorrow")


def status_url(item: BriefItem) -> str:
    return reverse("action-status", args=[item.pk])


@pytest.fixture
def viewer_client(client, share_link, make_user):
    """A signed-in user who opened the share link: may view, not mark."""
    client.force_login(make_user("vera"))
    assert client.get(reverse("share-page", args=[share_link.token])).status_code == 200
    return client


@pytest.fixture
def stranger_client(client, stranger):
    client.force_login(stranger)
    return client


def test_the_owner_sees_the_task_with_owner_due_meeting_moment_and_age(task, owner_client):
    page = owner_client.get(ACTIONS).content.decode()
    assert "Send the deck" in page and "Owner: Ana" in page and "Due: tomorrow" in page
    assert reverse("session-history", args=[task.session.pk]) in page
    evidence = task.evidence[0]["id"]
    assert f"?at={task.start_ms}#line-{evidence}" in page
    assert ">02:05<" in page
    assert "raised" in page and "ago" in page
    assert "Mark done" in page
    assert f'href="{ACTIONS}" aria-current="page">Action items' in page


def test_a_share_link_viewer_sees_the_task_but_cannot_mark_it(task, viewer_client):
    page = viewer_client.get(ACTIONS).content.decode()
    assert "Send the deck" in page and "Mark done" not in page
    response = viewer_client.post(status_url(task), {"status": "done"})
    assert response.status_code == 403
    assert b"Only the session's owner" in response.content
    assert BriefItem.objects.get(pk=task.pk).status == "open"


def test_a_browser_with_only_the_link_sees_it_too(task, client, share_link):
    client.get(reverse("share-page", args=[share_link.token]))
    assert "Send the deck" in client.get(ACTIONS).content.decode()
    assert client.post(status_url(task), {"status": "done"}).status_code == 403


def test_a_stranger_finds_nothing_and_gets_404(task, stranger_client):
    assert "Send the deck" not in stranger_client.get(ACTIONS).content.decode()
    assert stranger_client.post(status_url(task), {"status": "done"}).status_code == 404


def test_an_anonymous_visitor_is_sent_to_sign_in(task, client):
    response = client.get(ACTIONS)
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.post(status_url(task), {"status": "done"}).status_code == 302
    assert BriefItem.objects.get(pk=task.pk).status == "open"


def test_marking_done_over_htmx_swaps_the_row_and_reopen_undoes_it(task, owner_client, owner):
    response = owner_client.post(status_url(task), {"status": "done"}, HTTP_HX_REQUEST="true")
    row = response.content.decode()
    assert response.status_code == 200
    assert row.lstrip().startswith(f'<li id="action-{task.pk}" class="action-row done"')
    assert "Reopen" in row and "Mark done" not in row
    task.refresh_from_db()
    assert (task.status, task.status_set_by) == ("done", owner)

    row = owner_client.post(status_url(task), {"status": "open"}, HTTP_HX_REQUEST="true")
    assert "Mark done" in row.content.decode()
    assert BriefItem.objects.get(pk=task.pk).status == "open"


def test_without_htmx_marking_returns_to_the_list_as_it_was(task, owner_client):
    back = f"{ACTIONS}?status=all&owner=Ana"
    response = owner_client.post(status_url(task), {"status": "done", "next": back})
    assert (response.status_code, response.url) == (302, back)
    response = owner_client.post(
        status_url(task), {"status": "open", "next": "https://evil.example/actions/"}
    )
    assert response.url == ACTIONS


def test_marking_a_live_meetings_item_pushes_it_to_the_live_page(
    task, owner_client, django_capture_on_commit_callbacks
):
    assert task.session.is_live
    with GroupWatch(task.session.pk) as watch:
        with django_capture_on_commit_callbacks(execute=True):
            owner_client.post(status_url(task), {"status": "done"})
        pushed = watch.html()
    assert f'id="brief-{task.pk}"' in pushed and "Done" in pushed


@pytest.mark.parametrize("status", ["", "closed", "DONE"])
def test_a_bad_status_is_refused_with_a_message(task, owner_client, status):
    response = owner_client.post(status_url(task), {"status": status})
    assert response.status_code == 400
    assert "open" in response.content.decode()


def test_only_action_items_have_a_status_to_mark(task, owner_client):
    decision = decided(task.session, "Use the new deck")
    assert owner_client.post(status_url(decision), {"status": "done"}).status_code == 404
    assert owner_client.get(status_url(task)).status_code == 405


def test_filters_apply_over_htmx_and_bad_ones_are_reported(task, owner_client):
    response = owner_client.get(ACTIONS, {"owner": "bo"}, HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<div id="action-list">')
    assert "No action item matches these filters" in fragment
    page = owner_client.get(ACTIONS, {"series": "Nope", "status": "all"}).content.decode()
    assert "Select a valid choice" in page and "Send the deck" in page
    assert "Send the deck" in owner_client.get(ACTIONS, {"series": "Roadmap"}).content.decode()


def test_the_list_is_paged(task, owner_client):
    for n in range(30):
        to_do(task.session, f"Task number {n}")
    first = owner_client.get(ACTIONS).content.decode()
    assert "Page 1 of 2" in first and "31 open action items" in first
    assert "Page 2 of 2" in owner_client.get(ACTIONS, {"page": "2"}).content.decode()
    assert owner_client.get(ACTIONS, {"page": "x"}).status_code == 200


def test_text_from_the_model_is_escaped(task, owner_client):
    to_do(task.session, HOSTILE, owner=HOSTILE, due=HOSTILE)
    page = owner_client.get(ACTIONS).content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
