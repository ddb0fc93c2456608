"""When the brief refreshes: the trigger ingest checks on every final line (cheaply), the
claim that keeps one generation in flight, the reconciler's minute-with-some-speech and
lost-final-pass repairs, and the final pass when capture stops, through a real worker."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions_app.capture import handoff, lifecycle
from sessions_app.intelligence import brief, schedule
from sessions_app.live import ingest
from sessions_app.live.events import TranscriptInput
from sessions_app.models import Brief, CaptureSession, TranscriptSegment
from sessions_app.tasks import reconcile, refresh_brief, sync_session
from tests.conftest import TINY_MEETING, wait_until
from tests.sessions_app.intelligence.played import live_session, store_meeting

GENERATE = "POST collection/default/generate/text"


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, bool]]:
    """What the trigger hands to Celery (the broker is not what these tests look at)."""
    calls: list[tuple[int, bool]] = []

    def enqueue(pk: int, *, final: bool = False, reserved: object = None) -> None:
        calls.append((pk, final))

    monkeypatch.setattr(schedule, "enqueue", enqueue)
    return calls


@pytest.fixture
def session(make_session, make_stream, owner) -> CaptureSession:
    return live_session(make_session, make_stream, owner)


def say(session: CaptureSession, text: str, at_s: float, *, final: bool = True) -> None:
    stream = ingest.find_stream(session.streams.get(name="mic:default").videodb_id)
    start = int(session.started_at.timestamp() * 1000 + at_s * 1000)
    if final:
        ingest.store(stream, TranscriptInput(text, True, start, start + 900))
        return
    # Interim text is no longer stored (the relay pushes it); a row an older version stored
    # for it is what a database may still hold.
    with transaction.atomic():
        TranscriptSegment.objects.create(
            session=session, stream=stream, text=text, is_final=False, start_ms=start,
            end_ms=start + 900, seq=ingest.next_seq(session.pk),
        )  # fmt: skip


LINE = "We should move the pricing launch to March and tell the partners this week. "


def test_enough_new_final_speech_enqueues_a_refresh_once_committed(
    session, settings, enqueued, django_capture_on_commit_callbacks
) -> None:
    settings.BRIEF_MIN_NEW_CHARS = 3 * len(LINE)
    with django_capture_on_commit_callbacks(execute=True):
        say(session, LINE, 1)
        say(session, LINE * 3, 2, final=False)  # interim text is not speech yet
        say(session, LINE, 3)
    assert enqueued == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        say(session, LINE, 4)
    assert len(callbacks) == 1 and enqueued == [(session.pk, False)]


def test_a_minute_after_the_last_brief_any_new_speech_is_enough(
    session, settings, enqueued, django_capture_on_commit_callbacks
) -> None:
    Brief.objects.create(
        session=session, number=1, model_name="basic", prompt_version="t",
        made_at=timezone.now() - timedelta(seconds=settings.BRIEF_MAX_WAIT_SECONDS + 1),
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        say(session, "Okay.", 1)
    assert enqueued == [(session.pk, False)]


def test_the_check_is_two_indexed_reads_and_nothing_once_a_refresh_is_on_its_way(
    session, settings, enqueued, django_capture_on_commit_callbacks
) -> None:
    def queries(at_s: float) -> int:
        stream = ingest.find_stream(session.streams.get(name="mic:default").videodb_id)
        start = int(session.started_at.timestamp() * 1000 + at_s * 1000)
        with CaptureQueriesContext(connection) as done:
            ingest.store(stream, TranscriptInput(LINE, True, start, start + 900))
        return len(done.captured_queries)

    CaptureSession.objects.filter(pk=session.pk).update(brief_claimed_at=timezone.now())
    held = queries(1)  # a refresh is running: the check asks nothing
    CaptureSession.objects.filter(pk=session.pk).update(brief_claimed_at=None)
    settings.BRIEF_MIN_NEW_CHARS = 10 * len(LINE)
    assert queries(2) == held + 2  # not due: the last brief, and the speech since
    settings.BRIEF_MIN_NEW_CHARS = 1
    with django_capture_on_commit_callbacks(execute=True):
        assert queries(3) == held + 3  # due: and the reservation
        assert queries(4) == held  # reserved: the refresh is on its way
    assert enqueued == [(session.pk, False)]
    reserved = CaptureSession.objects.get(pk=session.pk).brief_claimed_at
    assert reserved is not None


def test_the_enqueued_refresh_takes_over_its_reservation_and_a_duplicate_finds_it_busy(
    session, videodb, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent: list[tuple[str, tuple, dict]] = []
    # The broker is outside this test: what is sent to it is what matters.
    monkeypatch.setattr(
        schedule.current_app,
        "send_task",
        lambda name, args, kwargs: sent.append((name, args, kwargs)),
    )
    settings.BRIEF_MIN_NEW_CHARS = 1
    with django_capture_on_commit_callbacks(execute=True):
        say(session, "We decided to ship the beta on Friday.", 1)
    ((name, args, kwargs),) = sent
    assert name == refresh_brief.name in schedule.current_app.tasks and args == (session.pk,)

    assert brief.refresh(session.pk) == "busy"  # a duplicate, without the reservation
    assert refresh_brief.apply(args=args, kwargs=kwargs).result == "made"
    assert refresh_brief.apply(args=args, kwargs=kwargs).result == "nothing new"  # redelivered
    assert CaptureSession.objects.get(pk=session.pk).brief_claimed_at is None


def test_a_reservation_whose_task_could_not_be_sent_is_given_back(
    session, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    def broker_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(schedule.current_app, "send_task", broker_down)
    settings.BRIEF_MIN_NEW_CHARS = 1
    with django_capture_on_commit_callbacks(execute=True):
        say(session, "We decided to ship the beta on Friday.", 1)  # stored all the same
    assert CaptureSession.objects.get(pk=session.pk).brief_claimed_at is None


def test_after_capture_stopped_any_new_speech_asks_for_the_final_pass(
    session, enqueued, django_capture_on_commit_callbacks
) -> None:
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")
    with django_capture_on_commit_callbacks(execute=True):
        say(session, "One more thing.", 1)
    assert enqueued == [(session.pk, True)]


def test_the_reconciler_refreshes_briefs_due_by_time_and_final_passes_never_run(
    make_session, make_stream, owner, settings
) -> None:
    def meeting(title: str, **fields: object) -> CaptureSession:
        session = live_session(make_session, make_stream, owner, title=title, **fields)
        store_meeting(session, lines=["Short and sweet."])
        return session

    quiet_for_a_minute = meeting("quiet", started_minutes_ago=2)
    just_started = meeting("fresh")
    ended = meeting("ended", started_minutes_ago=30)
    settled = meeting("settled", started_minutes_ago=30)
    claimed = meeting("claimed", started_minutes_ago=2)
    for pk in (ended.pk, settled.pk):
        CaptureSession.objects.filter(pk=pk).update(status="stopped", ended_at=timezone.now())
    Brief.objects.create(
        session=settled, number=1, is_final=True, model_name="b", prompt_version="t"
    )
    CaptureSession.objects.filter(pk=claimed.pk).update(brief_claimed_at=timezone.now())
    silent = live_session(make_session, make_stream, owner, title="silent", started_minutes_ago=5)

    due = schedule.sessions_due()

    assert sorted(due) == sorted([(quiet_for_a_minute.pk, False), (ended.pk, True)])
    assert just_started.pk not in dict(due) and silent.pk not in dict(due)
    settings.BRIEF_MAX_WAIT_SECONDS = 24 * 3600
    assert schedule.sessions_due() == [(ended.pk, True)]


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_make_one_generation(session, videodb, settings) -> None:
    settings.BRIEF_MIN_NEW_CHARS = 10**6  # stored without asking: the test refreshes itself
    store_meeting(session, until_s=120)
    settings.BRIEF_MIN_NEW_CHARS = 1
    videodb.control.inject_generation_fault("slow", count=2, delay=1)
    outcomes: list[str] = []

    def run() -> None:
        try:
            outcomes.append(brief.refresh(session.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["busy", "made"]
    assert videodb.control.request_counts()[GENERATE] == 1
    assert Brief.objects.filter(session=session).count() == 1
    assert CaptureSession.objects.get(pk=session.pk).brief_claimed_at is None  # released


def test_a_final_pass_that_finds_the_brief_busy_retries_then_leaves_it_to_the_reconciler(
    session, videodb, settings
) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 0
    store_meeting(session, lines=["We decided to ship on Friday."])
    CaptureSession.objects.filter(pk=session.pk).update(
        status="stopped", ended_at=timezone.now(), brief_claimed_at=timezone.now()
    )

    assert refresh_brief.apply(args=(session.pk,), kwargs={"final": True}).result == "busy"
    assert not Brief.objects.filter(session=session).exists()

    CaptureSession.objects.filter(pk=session.pk).update(brief_claimed_at=None)
    assert schedule.sessions_due() == [(session.pk, True)]
    assert refresh_brief.apply(args=(session.pk,), kwargs={"final": True}).result == "made"
    assert Brief.objects.get(session=session).is_final
    assert schedule.sessions_due() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_when_capture_stops_the_final_pass_runs_in_the_worker(
    videodb, owner, settings, in_process_worker
) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 0
    settings.BRIEF_MIN_NEW_CHARS = 10**6
    session = handoff.create_session(
        owner, title="Standup", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = handoff.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=0.05, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    assert sync_session.apply(args=(session.pk,)).result == "active"
    session = CaptureSession.objects.get(pk=session.pk)
    store_meeting(session, lines=["We decided to offer a discount.", "I will send the quote."])
    assert reconcile()["briefs"] == 0  # under the thresholds, and not a minute yet

    videodb.control.stop_session(session.videodb_id)
    videodb.control.wait_for_status(session.videodb_id, "stopped")
    assert sync_session.apply(args=(session.pk,)).result == "stopped"

    final = wait_until(lambda: Brief.objects.filter(session=session, is_final=True).first())
    assert final.number == 1 and final.source_count == 2
    assert {i.kind for i in final.items.all()} >= {"decision", "action"}
    assert lifecycle.sync_session(session.pk).final_brief is False  # stopped already


def test_a_check_that_fails_never_costs_the_line_its_live_update(session, monkeypatch) -> None:
    def away(session_id: int) -> None:
        raise OperationalError("the brief's tables are unreachable")

    monkeypatch.setattr(schedule, "progress", away)
    stream = ingest.find_stream(session.streams.get(name="mic:default").videodb_id)
    start = int(session.started_at.timestamp() * 1000)
    update = ingest.store(stream, TranscriptInput("Hello there.", True, start, start + 900))
    assert update is not None and "Hello there." in update["html"]
