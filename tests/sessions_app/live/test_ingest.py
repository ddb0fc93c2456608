"""The one path every event takes into the database: ``ingest.store`` keeps each event
once, numbers each real change, and renders the live update to publish (none for a
repeat), whether the event came over the socket, from a backfill or by callback."""

from __future__ import annotations

import pytest

from sessions_app.live import ingest
from sessions_app.live.events import AlertInput, InsightInput, TranscriptInput
from sessions_app.models import Alert, CaptureSession, Insight, RTStream, TranscriptSegment

pytestmark = pytest.mark.django_db


def last_seq(stream: RTStream) -> int:
    return CaptureSession.objects.get(pk=stream.session_id).last_seq


def test_interim_text_is_refused_only_finals_are_stored(mic) -> None:
    # Interim text is pushed by the relay (live/interim.py), never written to the database.
    with pytest.raises(ValueError, match="interim"):
        ingest.store(mic, TranscriptInput("Let's rev", False, 1000, 1400))
    assert not TranscriptSegment.objects.exists() and last_seq(mic) == 0
    final = ingest.store(mic, TranscriptInput("Let's review pricing.", True, 1000, 1800))
    (segment,) = TranscriptSegment.objects.all()
    assert (segment.text, segment.is_final, segment.seq) == ("Let's review pricing.", True, 1)
    assert final["seq"] == 1 and f'id="seg-{segment.pk}"' in final["html"]
    assert 'hx-swap-oob="true"' in final["html"] and "still speaking" not in final["html"]


def test_an_interim_row_stored_by_an_older_version_is_finalised_in_place(mic) -> None:
    old = TranscriptSegment.objects.create(
        session_id=mic.session_id, stream=mic, text="Let's rev", is_final=False,
        start_ms=1000, end_ms=1400, seq=1,
    )  # fmt: skip
    CaptureSession.objects.filter(pk=mic.session_id).update(last_seq=1)
    update = ingest.store(mic, TranscriptInput("Let's review pricing.", True, 1000, 1800))
    (segment,) = TranscriptSegment.objects.all()
    assert segment.pk == old.pk  # the id a citation may name is kept
    assert (segment.text, segment.is_final, segment.seq) == ("Let's review pricing.", True, 2)
    assert update["seq"] == 2 and f'id="seg-{old.pk}"' in update["html"]


def test_a_repeated_final_changes_nothing_and_publishes_nothing(mic) -> None:
    ingest.store(mic, TranscriptInput("Done.", True, 1000, 1800))
    assert ingest.store(mic, TranscriptInput("Done.", True, 1000, 1800)) is None
    assert TranscriptSegment.objects.get().text == "Done."
    assert last_seq(mic) == 1


def test_an_insight_is_stored_once(mic) -> None:
    event = InsightInput("audio", "Decision: offer a discount", 2000, 5000, "idx-1")
    update = ingest.store(mic, event)
    assert update is not None and "Decision: offer a discount" in update["html"]
    assert ingest.store(mic, event) is None
    assert Insight.objects.count() == 1


def test_an_alert_from_the_callback_and_the_socket_is_stored_and_shown_once(mic) -> None:
    from_callback = AlertInput("pricing", 1710000045100, 1710000047800, confidence=0.9)
    from_socket = AlertInput("pricing", 1710000045100, 1710000047800, text="again")
    assert ingest.store(mic, from_callback) is not None
    assert ingest.store(mic, from_socket, heard_now=True) is None
    assert Alert.objects.get().confidence == pytest.approx(0.9)


def test_only_an_event_heard_now_marks_its_stream_alive(mic) -> None:
    ingest.store(mic, TranscriptInput("Backfilled.", True, 1000, 1800))
    mic.refresh_from_db()
    assert mic.last_event_received_at is None
    ingest.store(mic, TranscriptInput("Live.", True, 3000, 3500), heard_now=True)
    mic.refresh_from_db()
    assert mic.last_event_received_at is not None and mic.last_event_ms == 3500


def test_a_repeat_heard_now_still_shows_the_stream_is_alive(mic) -> None:
    event = TranscriptInput("Done.", True, 1000, 1800)
    ingest.store(mic, event)
    assert ingest.store(mic, event, heard_now=True) is None
    mic.refresh_from_db()
    assert mic.last_event_received_at is not None


def test_find_stream_loads_the_session_with_it(mic, django_assert_num_queries) -> None:
    stream = ingest.find_stream(mic.videodb_id)
    with django_assert_num_queries(0):
        assert stream.session.pk == mic.session_id
    assert ingest.find_stream("rts-unknown") is None
