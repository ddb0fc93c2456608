"""A meeting played by the emulator, and what VideoDB and Copilot each hold of it: the
relay's and the recovery's tests compare the two."""

from __future__ import annotations

from sessions_app.capture import handoff, lifecycle
from sessions_app.models import CaptureSession, Insight, TranscriptSegment
from tests.conftest import TINY_MEETING


def remote_truth(videodb, session: CaptureSession) -> tuple[set, set]:
    """Everything VideoDB stored for the session: final segments and index records."""
    conn = videodb.connect()
    segments, records = set(), set()
    for stream in session.streams.all():
        remote = conn.get_collection().get_rtstream(stream.videodb_id)
        for segment in remote.get_transcript(page_size=1000).get("segments", []):
            segments.add((stream.videodb_id, segment["start"], segment["text"]))
        for index in remote.list_scene_indexes():
            kind = "audio" if index.extraction_type == "transcript" else "visual"
            for record in index.get_scenes(page_size=1000)["scenes"]:
                records.add((stream.videodb_id, kind, record["start"], record["text"]))
    return segments, records


def stored(session: CaptureSession) -> tuple[set, set]:
    segments = set(
        TranscriptSegment.objects.filter(session=session, is_final=True).values_list(
            "stream__videodb_id", "start_ms", "text"
        )
    )
    insights = set(
        Insight.objects.filter(session=session).values_list(
            "stream__videodb_id", "kind", "start_ms", "text"
        )
    )
    return segments, insights


def start_meeting(videodb, owner) -> CaptureSession:
    """A session playing the tiny meeting, its AI started (on the relay's socket, if up)."""
    session = handoff.create_session(
        owner, title="Drop test", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = handoff.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=1, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    lifecycle.sync_session(session.pk)
    lifecycle.start_ai(session.pk)
    return CaptureSession.objects.get(pk=session.pk)
