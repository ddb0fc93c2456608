"""Recovery against the emulator: a backfill stores what VideoDB has and the socket did not
deliver, once, and shows it in order; operations follow the relay to its new socket; and
each relay looks after its own shard's sessions, live or just ended."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.live import recovery
from sessions_app.models import CaptureSession, StreamOperation
from tests.sessions_app.meetings import remote_truth, start_meeting, stored
from tests.sessions_app.watching import GroupWatch

pytestmark = pytest.mark.django_db
S = CaptureSession.Status


@pytest.fixture
def played(videodb, owner) -> CaptureSession:
    """A meeting VideoDB transcribed and indexed while no relay listened."""
    session = start_meeting(videodb, owner)
    videodb.control.set_speed(session.videodb_id, 10)
    videodb.control.wait_for_meeting(session.videodb_id, timeout=60)
    return session


def test_a_backfill_stores_what_videodb_has_once_and_shows_it_in_order(videodb, played) -> None:
    with GroupWatch(played.pk) as watch:
        changed = recovery.backfill(played)
        remote = remote_truth(videodb, played)
        assert remote[0] and remote[1] and stored(played) == remote
        seqs = [message["seq"] for message in watch.received()]
        assert len(seqs) == changed and seqs == sorted(seqs)

        assert recovery.backfill(played) == 0
        assert watch.received() == []


def test_a_stream_videodb_cannot_answer_for_is_tried_again_later(videodb, played) -> None:
    streams = {stream.videodb_id for stream in played.streams.all()}
    videodb.control.inject_faults(fail_count=1000, status=503)
    assert recovery.backfill_streams(streams) == streams
    assert stored(played) == (set(), set())

    videodb.control.clear_faults()
    assert recovery.backfill_streams(streams) == set()
    assert stored(played) == remote_truth(videodb, played)


def test_the_running_operations_follow_the_relay_to_its_new_socket(videodb, owner) -> None:
    session = start_meeting(videodb, owner)
    assert recovery.route_operations(session, "ws-new") == 5  # 2 transcripts, 3 indexes
    assert set(StreamOperation.objects.values_list("ws_connection_id", flat=True)) == {"ws-new"}
    assert recovery.route_operations(session, "ws-new") == 0

    CaptureSession.objects.filter(pk=session.pk).update(status=S.STOPPED)
    session.refresh_from_db()
    assert recovery.route_operations(session, "ws-newer") == 0


def test_a_relay_looks_after_its_shards_live_and_just_ended_sessions(
    make_session, owner, settings
) -> None:
    settings.RELAY_SHARDS = 2
    now = timezone.now()
    sessions = {
        "live": make_session(owner, status=S.ACTIVE),
        "live too": make_session(owner, status=S.STOPPING),
        "just ended": make_session(owner, status=S.STOPPED, ended_at=now),
        "long over": make_session(owner, status=S.EXPORTED, ended_at=now - timedelta(hours=1)),
        "not started": make_session(owner, status=S.CREATED),
    }
    expected = {sessions[name].pk for name in ("live", "live too", "just ended")}
    for shard in ("0", "1"):
        mine = {session.pk for session in recovery.sessions_of(shard)}
        assert mine == {pk for pk in expected if pk % 2 == int(shard)}


def test_only_the_streams_of_ended_sessions_are_done(make_session, make_stream, owner) -> None:
    live = make_stream(make_session(owner, status=S.ACTIVE))
    ended = make_stream(make_session(owner, status=S.FAILED, ended_at=timezone.now()))
    names = [live.videodb_id, ended.videodb_id, "rts-unknown"]
    assert recovery.ended_streams(names) == [ended.videodb_id]
