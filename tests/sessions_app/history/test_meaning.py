"""Search by meaning: VideoDB (the emulator, through the real SDK) is asked about the
sessions in scope, its answers land on stored moments, and they merge with keyword hits."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from sessions_app import gateway, history_views
from sessions_app.history import meaning, record, search
from sessions_app.models import CaptureSession, RTStream, TranscriptSegment
from tests.conftest import TINY_MEETING
from tests.sessions_app.conftest import say

OBJECTION = "The enterprise tier costs too much for us."


@pytest.fixture
def recorded(videodb, owner, db) -> CaptureSession:
    """The tiny meeting captured in VideoDB, transcribed, stopped and exported, and stored in
    Copilot the way the relay's backfill stores it."""
    remote = gateway.create_capture_session(
        end_user_id="user-1", callback_url="", metadata={"title": "Pricing call"}
    )
    videodb.control.simulate(remote.id, TINY_MEETING, speed=0.25)
    videodb.control.wait_for_status(remote.id, "active")
    streams = gateway.get_capture_session(remote.id).streams
    for s in streams:
        if s.name.startswith(("mic", "system_audio")):
            gateway.start_transcript(s.id, ws_connection_id=None)
    videodb.control.set_speed(remote.id, 40)
    videodb.control.wait_for_meeting(remote.id)
    videodb.control.wait_for_status(remote.id, "stopped")
    export = gateway.export_capture_session(remote.id)
    started = videodb.server.core.store.sessions[remote.id].started_at_ms
    session = CaptureSession.objects.create(
        owner=owner,
        title="Pricing call",
        videodb_id=remote.id,
        status=CaptureSession.Status.EXPORTED,
        exported_video_id=export.video_id,
        player_url=export.player_url,
        # Copilot hears "active" a moment after VideoDB started: video time 0 is earlier.
        started_at=datetime.fromtimestamp((started + 700) / 1000, tz=UTC),
    )
    for s in streams:
        stream = RTStream.objects.create(
            session=session,
            videodb_id=s.id,
            name=s.name,
            kind=RTStream.kind_for(s.name, s.channel_id),
            media_types=list(s.media_types),
        )
        if stream.has_audio:
            for raw in gateway.transcript_since(s.id, None):
                say(stream, raw["text"], int(raw["start"]), final=True)
    return session


@pytest.mark.django_db(transaction=True)
def test_videodb_hits_land_on_stored_moments_and_merge_with_keyword_hits(recorded):
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    found = meaning.ask("enterprise tier too expensive", [recorded.pk], search.Filters())
    assert found.notice == ""
    assert found.hits, "VideoDB found nothing"
    assert {h.entry.segment_id for h in found.hits if h.entry} >= {objection.pk}
    # The exported video's hit is matched by its text, not by the (earlier) video clock.
    video_hits = [h for h in found.hits if h.stream is None]
    assert video_hits and video_hits[0].entry.segment_id == objection.pk


@pytest.mark.django_db(transaction=True)
def test_the_by_meaning_switch_on_the_search_page(recorded, client, owner):
    client.force_login(owner)
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    body = client.get(reverse("search"), {"q": "enterprise tier", "meaning": "1"}).content.decode()
    assert "by meaning" in body
    assert f"#line-{objection.pk}" in body
    # Found both ways, the moment is listed once, first.
    first = body.split('class="hit ')[1]
    assert "by meaning" in first and "<mark>enterprise</mark>" in first.lower()
    assert body.count(f"#line-{objection.pk}") == 1


@pytest.mark.django_db(transaction=True)
def test_videodb_failing_leaves_the_keyword_hits_and_says_so(recorded, client, owner, videodb):
    client.force_login(owner)
    videodb.control.inject_faults(fail_count=50, status=503)
    body = client.get(reverse("search"), {"q": "enterprise", "meaning": "1"}).content.decode()
    assert "did not answer" in body
    assert "<mark>enterprise</mark>" in body.lower()


@pytest.mark.django_db(transaction=True)
def test_a_jump_in_an_exported_session_offers_a_clip_from_that_moment(recorded, client, owner):
    client.force_login(owner)
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    response = client.get(
        reverse("session-history", args=[recorded.pk]), {"at": objection.start_ms}
    )
    body = response.content.decode()
    assert "Play the recording from" in body
    assert "/_media/player/rtstream/" in body


@pytest.mark.django_db(transaction=True)
def test_landing_the_hits_takes_the_same_queries_however_many_there_are(
    recorded, django_assert_max_num_queries
):
    # The streams, the exported sessions, the lines saying a video hit's words, and every
    # stored moment within a minute of any hit: four queries, not a few per hit.
    with django_assert_max_num_queries(4):
        found = meaning.ask("pricing enterprise discount quote", [recorded.pk], search.Filters())
    assert len(found.hits) >= 4 and all(h.entry for h in found.hits)


def search_page(client, q: str) -> tuple[str, float]:
    began = time.monotonic()
    body = client.get(reverse("search"), {"q": q, "meaning": "1"}).content.decode()
    return body, time.monotonic() - began


@pytest.mark.django_db(transaction=True)
def test_a_slow_stream_does_not_hold_the_page_and_what_answered_in_time_shows(
    recorded, client, owner, videodb
):
    client.force_login(owner)
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    # Four searches (three streams, the exported video): the first to arrive takes 5 s. The
    # objection is found both on Dana's stream and in the video, so one of them answers.
    videodb.control.inject_faults(slow_count=1, delay=5.0)
    body, took = search_page(client, "enterprise tier")
    assert meaning.DEADLINE_SECONDS <= took < meaning.DEADLINE_SECONDS + 1.5
    assert "of VideoDB&#x27;s 4 searches, 1 did not answer within 3 s" in body
    first = body.split('class="hit ')[1]
    assert "by meaning" in first and f"#line-{objection.pk}" in first


@pytest.mark.django_db(transaction=True)
def test_answers_within_the_deadline_are_waited_for(recorded, client, owner, videodb):
    client.force_login(owner)
    videodb.control.inject_faults(slow_count=4, delay=1.0)
    body, took = search_page(client, "enterprise tier too expensive")
    assert took < meaning.DEADLINE_SECONDS
    assert "did not answer" not in body and "incomplete" not in body
    assert "chip-meaning" in body and "costs too much for us" in body


@pytest.mark.django_db(transaction=True)
def test_a_clip_videodb_is_too_slow_to_make_falls_back_to_the_whole_recording(
    recorded, client, owner, videodb
):
    client.force_login(owner)
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    videodb.control.inject_faults(slow_count=1, delay=5.0)
    began = time.monotonic()
    response = client.get(
        reverse("session-history", args=[recorded.pk]), {"at": objection.start_ms}
    )
    took = time.monotonic() - began
    assert history_views.CLIP_DEADLINE_SECONDS <= took < history_views.CLIP_DEADLINE_SECONDS + 1.5
    body = response.content.decode()
    assert "it did not answer within 3 s" in body
    assert f'href="{recorded.player_url}"' in body.replace("&amp;", "&")


@pytest.mark.django_db(transaction=True)
def test_a_clip_made_within_the_deadline_is_offered(recorded, client, owner, videodb):
    client.force_login(owner)
    objection = TranscriptSegment.objects.get(text=OBJECTION)
    videodb.control.inject_faults(slow_count=1, delay=1.0)
    body = client.get(
        reverse("session-history", args=[recorded.pk]), {"at": objection.start_ms}
    ).content.decode()
    assert "/_media/player/rtstream/" in body and "could not make a clip" not in body


def _hits(body: str) -> list[str]:
    """Each result row's text, tags dropped and spaces squeezed."""
    rows = re.findall(r'<li class="hit .*?</li>', body, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in rows]


@pytest.mark.django_db(transaction=True)
def test_a_line_found_in_its_stream_and_in_the_video_is_listed_once_under_its_speaker(
    recorded, client, owner
):
    client.force_login(owner)
    # No line holds both words, so every hit is VideoDB's: each of the two lines is found on
    # its stream and again in the exported video.
    found = meaning.ask("pricing discount", [recorded.pk], search.Filters())
    assert len(found.hits) == 4
    body = client.get(reverse("search"), {"q": "pricing discount", "meaning": "1"}).content
    hits = _hits(body.decode())
    assert len(hits) == 2, hits
    assert sum("pricing page" in hit for hit in hits) == 1
    assert sum("offer a discount" in hit for hit in hits) == 1
    assert not any("Recording" in hit for hit in hits), hits
    speakers = {s.speaker for s in recorded.streams.all() if s.has_audio}
    assert all(any(speaker in hit for speaker in speakers) for hit in hits), hits


@pytest.mark.django_db(transaction=True)
def test_moments_found_only_by_meaning_are_not_called_none_found(recorded, client, owner):
    client.force_login(owner)
    body = client.get(reverse("search"), {"q": "pricing discount", "meaning": "1"}).content
    assert re.search(r'id="hits-heading">No exact match; 2 moments by meaning<', body.decode())
    body = client.get(reverse("search"), {"q": "enterprise tier", "meaning": "1"}).content
    heading = re.search(r'id="hits-heading">([^<]*)<', body.decode()).group(1)
    assert heading.startswith("1 moment found"), heading


@pytest.mark.django_db(transaction=True)
def test_no_score_number_is_shown_and_hits_show_time_into_the_meeting(recorded, client, owner):
    client.force_login(owner)
    body = client.get(reverse("search"), {"q": "pricing discount", "meaning": "1"}).content
    body = body.decode()
    assert re.findall(r'chip-meaning">([^<]*)<', body) == ["by meaning", "by meaning"]
    # The moment's time into the meeting, the one its line shows on the history page.
    line = TranscriptSegment.objects.get(text__contains="discount")
    (said,) = [x for x in record.load(recorded).lines if x.id == line.pk]
    at = record.format_offset(said.offset_ms)
    (hit,) = [h for h in _hits(body) if "offer a discount" in h]
    assert f" at {at} " in hit
    assert f'<time datetime="PT0H{said.offset_ms // 60_000}M' in body


def test_the_heading_counts_keyword_matches_and_the_moments_only_meaning_found():
    def items(*flags: tuple[bool, bool]) -> list[meaning.Item]:
        return [
            meaning.Item(None, "speech", "Said", 0, "", "", by_keyword=k, by_meaning=m)
            for k, m in flags
        ]

    assert meaning.heading(0, []) == "No moment found"
    assert meaning.heading(0, items((False, True))) == "No exact match; 1 moment by meaning"
    assert meaning.heading(30, items((True, True), (True, False))) == "30 moments found"
    assert meaning.heading(1, items((True, False), (False, True), (False, True))) == (
        "1 moment found, and 2 more by meaning"
    )
    # Past search.COUNT_CAP the keyword count is a floor, and says so.
    assert meaning.heading(1000, items((True, False), (False, True)), capped=True) == (
        "1,000+ moments found, and 1 more by meaning"
    )
    assert meaning.heading(1000, items((True, False)), capped=True) == "1,000+ moments found"
