"""History pages, search, fragments and exports: who may see what, and what they see.

The permission matrix: the owner, a viewer who opened a share link (without an account,
and signed in), a stranger (signed in, not shared), and an anonymous visitor (no link)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import CaptureSession, SessionViewer
from sessions_app.viewers import sharing
from tests.sessions_app.conftest import HOSTILE, fire, note, say

pytestmark = pytest.mark.django_db

FORMATS = ["md", "srt", "vtt", "json"]
SECRET_LINE = "the confidential pricing for ACME is nine hundred"


@pytest.fixture
def past_meeting(meeting, mic, screen):
    start = timezone.now() - timedelta(hours=2)
    CaptureSession.objects.filter(pk=meeting.pk).update(
        status="stopped", started_at=start, ended_at=start + timedelta(minutes=30)
    )
    meeting.refresh_from_db()
    base = int(start.timestamp() * 1000)
    say(mic, "Welcome everyone to the roadmap review", base + 1_000, final=True)
    say(mic, SECRET_LINE, base + 60_000, final=True)
    note(screen, "Slide: ACME price list", base + 61_000, kind="visual")
    fire(mic, "pricing_shared", base + 62_000, text="Price list on screen")
    return meeting


@pytest.fixture
def viewer_client(client, share_link):
    """A browser without an account that opened the share link."""
    assert client.get(reverse("share-page", args=[share_link.token])).status_code == 200
    return client


@pytest.fixture
def shared_user_client(client, share_link, make_user):
    """A signed-in user who opened the share link."""
    client.force_login(make_user("vera", display_name="Vera Viewer"))
    assert client.get(reverse("share-page", args=[share_link.token])).status_code == 200
    return client


@pytest.fixture
def stranger_client(client, stranger):
    client.force_login(stranger)
    return client


def urls_for(session: CaptureSession) -> dict[str, str]:
    search = reverse("search")
    return {
        "history": reverse("session-history", args=[session.pk]),
        "jump": reverse("session-history", args=[session.pk]) + "?at=1",
        **{f"export-{f}": reverse("session-export", args=[session.pk, f]) for f in FORMATS},
        "search": f"{search}?q=confidential",
    }


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "viewer", "shared_user"])
def test_those_allowed_see_the_history_search_and_every_export(who, past_meeting, request, owner):
    client = {
        "owner": lambda: request.getfixturevalue("owner_client"),
        "viewer": lambda: request.getfixturevalue("viewer_client"),
        "shared_user": lambda: request.getfixturevalue("shared_user_client"),
    }[who]()
    for name, url in urls_for(past_meeting).items():
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        body = response.content.decode()
        if name == "search":
            assert "<mark>confidential</mark>" in body
        elif name == "export-json":
            assert SECRET_LINE in [line["text"] for line in json.loads(body)["transcript"]]
        else:
            assert "confidential" in body
    fragment = client.get(urls_for(past_meeting)["search"], headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith('<div id="search-results"')


@pytest.mark.parametrize("who", ["viewer", "shared_user"])
def test_a_share_viewers_exports_carry_no_videodb_ids(who, past_meeting, mic, screen, request):
    CaptureSession.objects.filter(pk=past_meeting.pk).update(exported_video_id="m-recording")
    client = request.getfixturevalue(f"{who}_client")
    ids = [past_meeting.videodb_id, mic.videodb_id, screen.videodb_id, "m-recording"]
    assert all(ids)
    for fmt in FORMATS:
        body = client.get(reverse("session-export", args=[past_meeting.pk, fmt])).text
        assert SECRET_LINE in body
        assert not [i for i in ids if i in body], fmt
    exported = json.loads(
        client.get(reverse("session-export", args=[past_meeting.pk, "json"])).text
    )
    assert "videodb_id" not in exported["session"]
    assert all("videodb_id" not in stream for stream in exported["streams"])


def test_the_owners_json_export_keeps_videodb_ids(past_meeting, mic, owner_client):
    body = owner_client.get(reverse("session-export", args=[past_meeting.pk, "json"])).json()
    assert body["session"]["videodb_id"] == past_meeting.videodb_id
    assert mic.videodb_id in [stream["videodb_id"] for stream in body["streams"]]


def test_a_stranger_gets_404_and_finds_nothing(past_meeting, stranger_client):
    for name, url in urls_for(past_meeting).items():
        response = stranger_client.get(url)
        if name == "search":
            assert response.status_code == 200
            assert SECRET_LINE not in response.content.decode()
            assert past_meeting.title not in response.content.decode()
            assert "No moment found" in response.content.decode()
        else:
            assert response.status_code == 404, name
    # Even naming the session in the query string reveals nothing.
    scoped = stranger_client.get(
        reverse("search"),
        {"q": "confidential", "session": past_meeting.pk},
        headers={"HX-Request": "true"},
    )
    assert scoped.status_code == 200
    assert SECRET_LINE not in scoped.content.decode()
    assert past_meeting.title not in scoped.content.decode()


def test_an_anonymous_visitor_is_sent_to_sign_in(past_meeting, client):
    for name, url in urls_for(past_meeting).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_revoking_the_link_ends_viewing_for_everyone_who_opened_it(
    past_meeting, share_link, viewer_client, make_user, django_user_model
):
    from django.test import Client

    signed_in = Client()
    signed_in.force_login(make_user("vera"))
    signed_in.get(reverse("share-page", args=[share_link.token]))
    url = reverse("session-history", args=[past_meeting.pk])
    assert viewer_client.get(url).status_code == 200
    assert signed_in.get(url).status_code == 200
    sharing.revoke(share_link)
    assert viewer_client.get(url).status_code == 404
    assert signed_in.get(url).status_code == 404
    assert (
        SECRET_LINE not in signed_in.get(reverse("search"), {"q": "confidential"}).content.decode()
    )


def test_an_expired_link_opens_nothing(past_meeting, expired_link, client):
    assert client.get(reverse("share-page", args=[expired_link.token])).status_code == 404
    assert client.get(reverse("session-history", args=[past_meeting.pk])).status_code == 302


def test_a_signed_in_viewer_sees_the_shared_session_in_their_list(
    past_meeting, shared_user_client, owner
):
    assert SessionViewer.objects.filter(session=past_meeting).count() == 1
    body = shared_user_client.get(reverse("dashboard")).content.decode()
    assert past_meeting.title in body
    assert "shared by Olivia Owner" in body
    mine = shared_user_client.get(reverse("dashboard"), {"whose": "mine"}).content.decode()
    assert past_meeting.title not in mine


def test_the_owner_opening_their_own_link_is_not_a_viewer(past_meeting, owner_client, share_link):
    owner_client.get(reverse("share-page", args=[share_link.token]))
    assert not SessionViewer.objects.exists()


# --- the history page -------------------------------------------------------------------------


def test_history_shows_transcript_with_offsets_speakers_and_the_timeline(
    past_meeting, owner_client
):
    body = owner_client.get(reverse("session-history", args=[past_meeting.pk])).content.decode()
    assert "00:01" in body and "01:00" in body
    assert "Host" in body
    assert 'class="timeline" role="group"' in body and '<svg class="timeline-plot"' in body
    assert "marker-alert" in body and "marker-screen" in body and 'class="bar"' in body
    assert "30:00" in body  # duration
    assert "2 lines said" in body


def test_a_jump_marks_the_line_spoken_at_that_moment(past_meeting, owner_client):
    base = int(past_meeting.started_at.timestamp() * 1000)
    body = owner_client.get(
        reverse("session-history", args=[past_meeting.pk]), {"at": base + 60_500}
    ).content.decode()
    marked = body.split('data-jump="true"')[0].rsplit("<li", 1)[1]
    assert "line current" in marked
    assert "not exported as a video" in body


@pytest.mark.parametrize("at", ["", "abc", "-5", "1e9", "9" * 40, "١٢٣"])
def test_a_bad_jump_is_ignored(past_meeting, owner_client, at):
    response = owner_client.get(reverse("session-history", args=[past_meeting.pk]), {"at": at})
    assert response.status_code == 200
    assert 'data-jump="true"' not in response.content.decode()


def test_text_from_videodb_is_escaped_on_the_history_page(past_meeting, mic, owner_client):
    say(mic, HOSTILE, int(past_meeting.started_at.timestamp() * 1000) + 5_000, final=True)
    body = owner_client.get(reverse("session-history", args=[past_meeting.pk])).content.decode()
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_an_unknown_export_format_is_404(past_meeting, owner_client):
    response = owner_client.get(reverse("session-export", args=[past_meeting.pk, "docx"]))
    assert response.status_code == 404


def test_exports_download_as_attachments(past_meeting, owner_client):
    for fmt in FORMATS:
        response = owner_client.get(reverse("session-export", args=[past_meeting.pk, fmt]))
        assert response["Content-Disposition"].startswith("attachment;")
        assert f".{fmt}" in response["Content-Disposition"]
        assert "charset=utf-8" in response["Content-Type"]


# --- the list ---------------------------------------------------------------------------------


def test_the_list_filters_sorts_and_pages(owner_client, owner, make_session, mic, meeting):
    fire(mic, "pricing_shared", 1_000)
    for n in range(30):
        make_session(owner, title=f"Standup {n:02d}", status="stopped")
    body = owner_client.get(reverse("dashboard")).content.decode()
    assert "31 sessions" in body and "Page 1 of 2" in body
    with_alerts = owner_client.get(reverse("dashboard"), {"alerts": "yes"}).content.decode()
    assert "1 session match" in with_alerts and meeting.title in with_alerts
    active = owner_client.get(reverse("dashboard"), {"status": "active"}).content.decode()
    assert meeting.title in active and "Standup" not in active
    by_title = owner_client.get(reverse("dashboard"), {"sort": "title"}).content.decode()
    assert by_title.index("Q3 roadmap review") < by_title.index("Standup 00")
    fragment = owner_client.get(
        reverse("dashboard"), {"page": "2"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="session-list"') and "Page 2 of 2" in fragment


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"date_from": "not-a-date"},
        {"date_from": "2026-12-01", "date_to": "2026-01-01"},
        {"sort": "; DROP TABLE"},
        {"page": "-1"},
        {"page": "x"},
        {"alerts": "maybe", "whose": "everyone"},
    ],
)
def test_bad_filters_are_reported_not_an_error(owner_client, meeting, params):
    response = owner_client.get(reverse("dashboard"), params)
    assert response.status_code == 200
    assert meeting.title in response.content.decode()


# --- search page ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    ["", "the", "x" * 1000, "y" * 5000, '"unclosed', "AND OR NOT ( ) : *", "🚀 東京", "-pricing"],
)
def test_hard_queries_answer_with_a_page(past_meeting, owner_client, q):
    for headers in ({}, {"HX-Request": "true"}):
        response = owner_client.get(reverse("search"), {"q": q}, headers=headers)
        assert response.status_code == 200


def test_bad_search_filters_are_reported(past_meeting, owner_client):
    response = owner_client.get(
        reverse("search"),
        {"q": "pricing", "kind": "bogus", "session": "abc", "date_from": "nope"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Select a valid choice" in body
    assert "<mark>pricing</mark>" in body


def test_facet_links_narrow_the_results(past_meeting, owner_client):
    body = owner_client.get(reverse("search"), {"q": "price"}).content.decode()
    assert "3 moments found" in body
    narrowed = owner_client.get(reverse("search"), {"q": "price", "kind": "visual"})
    assert "1 moment found" in narrowed.content.decode()


def test_each_hit_links_to_its_moment(past_meeting, owner_client):
    body = owner_client.get(reverse("search"), {"q": "confidential"}).content.decode()
    segment = past_meeting.segments.get(text=SECRET_LINE)
    assert f"/sessions/{past_meeting.pk}/history/?at={segment.start_ms}#line-{segment.pk}" in body


def test_a_hit_shows_its_time_into_the_meeting_as_the_history_page_does(past_meeting, owner_client):
    body = owner_client.get(reverse("search"), {"q": "confidential"}).content.decode()
    hit = body.split('class="hit ')[1]
    # Said one minute in: 01:00, as the history page's transcript shows it, not the clock.
    assert '<time datetime="PT0H1M0S">01:00</time>' in hit
    segment = past_meeting.segments.get(text=SECRET_LINE)
    history = owner_client.get(reverse("session-history", args=[past_meeting.pk])).content
    assert f'#line-{segment.pk}">01:00</a>' in history.decode()
    clock = timezone.localtime(past_meeting.started_at + timedelta(minutes=1))
    assert clock.strftime("%H:%M") not in hit.split("hit-text")[0]


def test_a_hit_of_a_session_that_never_started_counts_from_its_first_item(
    meeting, mic, owner_client
):
    base = 1_700_000_000_000
    say(mic, "Opening words", base, final=True)
    say(mic, "The confidential part comes later", base + 3_725_000, final=True)
    body = owner_client.get(reverse("search"), {"q": "confidential"}).content.decode()
    assert ">1:02:05</time>" in body


@pytest.mark.parametrize(
    ("path", "form_id", "target", "param"),
    [("/", "session-filters", "session-list", "status=stopped"),
     ("/actions/", "action-filters", "action-list", "status=done")],
)  # fmt: skip
def test_each_list_filters_through_the_shared_form_swapping_only_its_list(
    owner_client, past_meeting, path, form_id, target, param
):
    plain = owner_client.get(path).content.decode()
    assert f'<form id="{form_id}" class="filters" method="get" action="{path}"' in plain
    assert f'hx-get="{path}" hx-target="#{target}"' in plain
    assert "Clear filters" not in plain
    filtered = owner_client.get(f"{path}?{param}").content.decode()
    assert f'<a href="{path}">Clear filters</a>' in filtered


# --- search: hits first, counts after --------------------------------------------------------


def test_the_search_page_shows_its_hits_and_loads_the_counts_after_them(past_meeting, owner_client):
    body = owner_client.get(reverse("search"), {"q": "price", "kind": "visual"}).text
    assert "<mark>price</mark>" in body and "1 moment found" in body
    facets_url = reverse("search_facets") + "?q=price&amp;kind=visual"
    # htmx asks for the counts once the hits are shown; without JavaScript, the same link.
    assert f'hx-get="{facets_url}" hx-trigger="load"' in body
    assert f'<a href="{facets_url}">Counts by kind' in body
    assert 'aria-live="polite"' in body.split('class="facets"')[1].split(">")[0]
    assert "kind=alert" not in body  # no facet counted on the way to the hits


def test_the_counts_come_as_the_region_to_htmx_and_as_a_page_without_javascript(
    past_meeting, owner_client
):
    url = reverse("search_facets")
    region = owner_client.get(url, {"q": "price"}, headers={"HX-Request": "true"}).text
    assert region.lstrip().startswith('<div id="search-facets" aria-busy="false">')
    assert "<html" not in region
    assert "3 moments in all" in region
    assert 'hx-get="/search/?q=price&amp;kind=visual"' in region  # swaps the results
    page = owner_client.get(url, {"q": "price"}).text
    assert "<html" in page and "Back to the results" in page
    assert 'href="/search/?q=price&amp;kind=visual"' in page
    assert "hx-get" not in page.split("<main")[1]  # plain links back to the search


@pytest.mark.parametrize("who", ["owner", "viewer", "shared_user"])
def test_those_allowed_get_the_counts_of_what_they_may_view(who, past_meeting, request):
    client = request.getfixturevalue(f"{who}_client")
    response = client.get(reverse("search_facets"), {"q": "confidential"})
    assert response.status_code == 200
    assert past_meeting.title in response.text and "1 moment in all" in response.text


def test_a_stranger_gets_no_counts_of_a_session_not_theirs(past_meeting, stranger_client):
    url = reverse("search_facets")
    response = stranger_client.get(url, {"q": "confidential"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert past_meeting.title not in response.text and "in all" not in response.text
    # Naming the session is a parameter the page never sends them: refused, and nothing leaks.
    named = stranger_client.get(url, {"q": "confidential", "session": past_meeting.pk})
    assert named.status_code == 400
    assert past_meeting.title not in named.text


def test_an_anonymous_visitor_asking_for_counts_is_sent_to_sign_in(past_meeting, client):
    response = client.get(reverse("search_facets"), {"q": "confidential"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "params",
    [{"kind": "bogus"}, {"channel": "nope"}, {"session": "abc"}, {"date_from": "nope"},
     {"date_to": "2026-13-40"}],
)  # fmt: skip
def test_bad_parameters_for_the_counts_are_a_400(past_meeting, owner_client, params):
    response = owner_client.get(reverse("search_facets"), {"q": "price", **params})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


def test_the_counts_link_leaves_out_a_filter_the_page_reported(past_meeting, owner_client):
    body = owner_client.get(reverse("search"), {"q": "price", "date_from": "nope"}).text
    assert "Enter a valid date" in body
    link = reverse("search_facets") + "?q=price"
    assert f'hx-get="{link}"' in body
    assert owner_client.get(reverse("search_facets"), {"q": "price"}).status_code == 200


def test_past_the_count_cap_the_page_says_so_and_pages_on(past_meeting, owner_client, monkeypatch):
    from sessions_app.history import search

    monkeypatch.setattr(search, "COUNT_CAP", 2)
    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    body = owner_client.get(reverse("search"), {"q": "price"}).text
    assert "2+ moments found" in body
    assert "Page 1</span>" in body and "Page 1 of" not in body
    assert 'href="?q=price&amp;page=2"' in body and 'rel="next"' in body
    # The counts, loaded after, have the exact figure.
    assert "3 moments in all" in owner_client.get(reverse("search_facets"), {"q": "price"}).text
    last = owner_client.get(reverse("search"), {"q": "price", "page": 3}).text
    assert 'rel="prev"' in last and 'rel="next"' not in last
