"""A session's record: only final text, in time order, with offsets from the session's start,
read in a fixed number of queries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F, Model

from sessions_app.history import record
from sessions_app.models import BriefItem, CaptureSession, Question, RTStream, TranscriptSegment
from tests.sessions_app.conftest import fire, note, say

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
START_MS = 1_741_080_600_000  # START in epoch milliseconds


def started(session: CaptureSession, *, ended_after: timedelta | None = None) -> CaptureSession:
    ended = START + ended_after if ended_after is not None else None
    CaptureSession.objects.filter(pk=session.pk).update(started_at=START, ended_at=ended)
    session.refresh_from_db()
    return session


def test_epoch_ms_is_exact_for_the_session_clock() -> None:
    assert record.epoch_ms(START) == START_MS
    assert record.epoch_ms(START + timedelta(microseconds=999)) == START_MS


class TestWhatIsInTheRecord:
    def test_interim_text_is_left_out_and_final_text_kept(self, meeting, mic) -> None:
        say(mic, "Let's st", 1000)
        final = say(mic, "Let's start", 2000, final=True)
        say(mic, "and then", 4000)

        loaded = record.load(meeting)

        assert [(line.id, line.text) for line in loaded.lines] == [(final.pk, "Let's start")]

    def test_an_interim_replaced_by_its_final_appears_once_as_the_final(self, meeting, mic) -> None:
        say(mic, "Roadm", 1000)
        say(mic, "Roadmap first", 1000, final=True)

        assert [line.text for line in record.load(meeting).lines] == ["Roadmap first"]

    def test_another_sessions_items_are_not_included(
        self, make_session, make_stream, owner, meeting, mic
    ) -> None:
        other = make_stream(make_session(owner), "mic:default")
        say(other, "Not this meeting", 1000, final=True)
        note(other, "Not this slide", 1000, kind="visual")
        fire(other, "pricing_discussed", 1000)
        mine = say(mic, "This meeting", 1000, final=True)

        loaded = record.load(meeting)

        assert [line.id for line in loaded.lines] == [mine.pk]
        assert loaded.visual == [] and loaded.audio == [] and loaded.alerts == []
        assert [stream.id for stream in loaded.streams] == [mic.pk]

    def test_each_list_is_in_time_order_then_by_id(
        self, meeting, mic, system_audio, screen
    ) -> None:
        late = say(mic, "Third", 9000, final=True)
        early = say(system_audio, "First", 1000, final=True)
        same_time = say(mic, "Second", 1000, final=True)
        slide_2 = note(screen, "Slide 2", 8000, kind="visual")
        slide_1 = note(screen, "Slide 1", 2000, kind="visual")
        action = note(mic, "Action: send notes", 7000)
        decision = note(system_audio, "Decision: ship", 3000)
        later_alert = fire(mic, "pricing_discussed", 6000)
        alert = fire(screen, "pricing_shared", 5000)

        loaded = record.load(meeting)

        assert [line.id for line in loaded.lines] == [early.pk, same_time.pk, late.pk]
        assert [n.id for n in loaded.visual] == [slide_1.pk, slide_2.pk]
        assert [n.id for n in loaded.audio] == [decision.pk, action.pk]
        assert {n.kind for n in loaded.visual} == {"visual"}
        assert {n.kind for n in loaded.audio} == {"audio"}
        assert [f.id for f in loaded.alerts] == [alert.pk, later_alert.pk]

    def test_lines_carry_the_speaker_and_channel_of_their_stream(
        self, meeting, mic, system_audio
    ) -> None:
        mic.speaker_label = "Alice"
        mic.save(update_fields=["speaker_label"])
        say(system_audio, "Hello", 1000, final=True)
        say(mic, "Hi", 2000, final=True)
        say(system_audio, "Shall we?", 3000, final=True)

        loaded = record.load(meeting)

        assert [(line.speaker, line.channel) for line in loaded.lines] == [
            ("Others", "system_audio"),
            ("Alice", "mic"),
            ("Others", "system_audio"),
        ]
        assert loaded.speakers == ["Others", "Alice"]
        assert [line.stream_id for line in loaded.lines] == [
            system_audio.pk,
            mic.pk,
            system_audio.pk,
        ]

    def test_alerts_keep_label_confidence_trigger_and_explanation(self, meeting, screen) -> None:
        alert = fire(screen, "pricing_shared", 5000, text="Price list on screen", confidence=None)

        (flag,) = record.load(meeting).alerts

        assert flag == record.Flag(
            id=alert.pk,
            label="pricing_shared",
            title="Pricing shared",
            triggered=True,
            confidence=None,
            text="Price list on screen",
            stream_id=screen.pk,
            channel="screen",
            start_ms=5000,
            end_ms=6000,
            offset_ms=0,
            end_offset_ms=1000,
        )


class TestTimes:
    def test_offsets_count_from_when_the_session_started(self, meeting, mic, screen) -> None:
        started(meeting)
        say(mic, "A minute in", 60_000, final=True, session_start_ms=START_MS)
        note(screen, "Slide", START_MS + 83_000, kind="visual")
        fire(mic, "pricing_discussed", START_MS + 90_500)

        loaded = record.load(meeting)

        assert loaded.origin_ms == START_MS
        (line,) = loaded.lines
        assert (line.start_ms, line.end_ms) == (START_MS + 60_000, START_MS + 61_500)
        assert (line.offset_ms, line.end_offset_ms) == (60_000, 61_500)
        assert (loaded.visual[0].offset_ms, loaded.visual[0].end_offset_ms) == (83_000, 88_000)
        assert (loaded.alerts[0].offset_ms, loaded.alerts[0].end_offset_ms) == (90_500, 91_500)

    def test_an_item_stamped_before_the_start_is_clamped_to_zero(self, meeting, mic) -> None:
        started(meeting)
        say(mic, "Said while connecting", -2000, final=True, session_start_ms=START_MS)

        (line,) = record.load(meeting).lines

        assert line.start_ms == START_MS - 2000
        assert (line.offset_ms, line.end_offset_ms) == (0, 0)

    def test_without_a_start_time_the_first_item_is_the_origin(self, meeting, mic, screen) -> None:
        assert meeting.started_at is None
        say(mic, "Later", 50_000, final=True, session_start_ms=START_MS)
        fire(screen, "pricing_shared", START_MS + 20_000)
        say(mic, "Not final, not counted", 10_000, session_start_ms=START_MS)

        loaded = record.load(meeting)

        assert loaded.origin_ms == START_MS + 20_000
        assert loaded.alerts[0].offset_ms == 0
        assert loaded.lines[0].offset_ms == 30_000
        assert loaded.duration_ms == 31_500  # to the end of the last item

    def test_duration_is_from_start_to_end_when_both_are_known(self, meeting, mic) -> None:
        started(meeting, ended_after=timedelta(minutes=42, seconds=7))
        say(
            mic, "Said after the end was recorded", 3_000_000, final=True, session_start_ms=START_MS
        )

        assert record.load(meeting).duration_ms == (42 * 60 + 7) * 1000

    def test_duration_of_a_running_session_reaches_the_end_of_its_last_item(
        self, meeting, mic, screen
    ) -> None:
        started(meeting)
        say(mic, "First", 1000, final=True, session_start_ms=START_MS)
        note(screen, "Long description", START_MS + 30_000, kind="visual")  # ends at +35 s

        assert record.load(meeting).duration_ms == 35_000

    def test_an_empty_session_has_no_origin_and_no_duration(self, meeting) -> None:
        loaded = record.load(meeting)

        assert (loaded.origin_ms, loaded.duration_ms) == (0, 0)
        assert loaded.lines == loaded.visual == loaded.audio == loaded.alerts == []
        assert loaded.streams == [] and loaded.speakers == []

    def test_a_zero_length_final_line_keeps_its_times(self, meeting, mic) -> None:
        started(meeting)
        segment = say(mic, "Hm", 1000, final=True, session_start_ms=START_MS)
        TranscriptSegment.objects.filter(pk=segment.pk).update(end_ms=F("start_ms"))

        (line,) = record.load(meeting).lines

        assert (line.offset_ms, line.end_offset_ms) == (1000, 1000)


def test_loading_takes_six_queries_however_many_items_and_streams(
    meeting, mic, system_audio, screen, django_assert_num_queries
) -> None:
    for n, stream in enumerate([mic, system_audio, screen] * 5):
        line = say(stream, f"Line {n}", n * 1000, final=True)
        note(stream, f"Note {n}", n * 1000, kind="visual" if n % 2 else "audio")
        fire(stream, f"label_{n}", n * 1000)
        cites = [{"kind": "transcript", "id": line.pk}]
        BriefItem.objects.create(session=meeting, kind="summary", key=f"s{n}", text=f"Point {n}",
                                 evidence=cites, position=n)  # fmt: skip
        Question.objects.create(session=meeting, question=f"Q{n}", answer="A", evidence=cites,
                                outcome="answered")  # fmt: skip
    meeting = CaptureSession.objects.get(pk=meeting.pk)

    with django_assert_num_queries(6):
        loaded = record.load(meeting)
        speakers = [line.speaker for line in loaded.lines]

    assert len(loaded.lines) == len(loaded.alerts) == 15
    assert set(speakers) == {"Host", "Others", "Screen"}


def test_the_record_holds_plain_values_and_no_model_instance(
    meeting, mic, screen, django_assert_num_queries
) -> None:
    RTStream.objects.filter(pk=mic.pk).update(speaker_label="Alice")
    line = say(mic, "Roadmap first", 1000, final=True)
    note(screen, "Slide", 2000, kind="visual")
    note(screen, "Slide", 12_000, kind="visual")
    note(mic, "Decision: ship", 2000)
    fire(screen, "pricing_shared", 3000)
    cites = [{"kind": "transcript", "id": line.pk}]
    BriefItem.objects.create(session=meeting, kind="action", key="a", text="Send notes",
                             owner="Alice", evidence=cites)  # fmt: skip
    Question.objects.create(session=meeting, question="Q?", answer="A.", evidence=cites,
                            outcome="answered")  # fmt: skip
    loaded = record.load(CaptureSession.objects.get(pk=meeting.pk))

    def values(value: object) -> list[object]:
        if dataclasses.is_dataclass(value):
            return [value, *values([getattr(value, f.name) for f in dataclasses.fields(value)])]
        if isinstance(value, list | tuple):
            return [v for item in value for v in values(item)]
        return [value]

    assert not [v for v in values(loaded) if isinstance(v, Model)]
    with django_assert_num_queries(0):
        assert [(s.count, s.speakers) for s in loaded.screens] == [(2, ("Screen",))]
        assert [(g.count, g.speakers) for g in loaded.insights] == [(1, ("Alice",))]
        assert [(p.owner, p.evidence[0].id) for p in loaded.brief] == [("Alice", line.pk)]
        assert [q.evidence[0].id for q in loaded.questions] == [line.pk]
        assert (loaded.session.id, loaded.session.status_label) == (meeting.pk, "Active")
        assert [(s.id, s.kind_label, s.speaker, s.has_audio) for s in loaded.streams] == [
            (screen.pk, "Screen", "Screen", False),
            (mic.pk, "Microphone", "Alice", True),
        ]


@pytest.mark.parametrize(
    ("ms", "millis", "expected"),
    [
        (0, False, "00:00"),
        (999, False, "00:00"),
        (83_000, False, "01:23"),
        (59 * 60_000 + 59_999, False, "59:59"),
        (3_600_000, False, "1:00:00"),
        (3_723_004, False, "1:02:03"),
        (36_000_000 * 3, False, "30:00:00"),
        (83_456, True, "01:23.456"),
        (5, True, "00:00.005"),
        (3_723_004, True, "1:02:03.004"),
        (-1500, False, "00:00"),
        (-1500, True, "00:00.000"),
    ],
)
def test_format_offset_shows_minutes_seconds_then_hours_and_optional_millis(
    ms: int, millis: bool, expected: str
) -> None:
    assert record.format_offset(ms, millis=millis) == expected


class TestRepetitionsBriefAndQuestions:
    def test_repeats_are_kept_as_they_came_and_grouped_as_shown(
        self, meeting, mic, system_audio, screen
    ) -> None:
        first = note(mic, "Decision: ship on Friday", 30_000)
        copy = note(system_audio, "Decision: ship on Friday", 30_000)
        slides = [note(screen, "Pricing page", s, kind="visual") for s in (10_000, 20_000)]

        loaded = record.load(meeting)

        assert [n.id for n in loaded.audio] == [first.pk, copy.pk]
        assert [(g.id, g.ids, g.speakers) for g in loaded.insights] == [
            (first.pk, (first.pk, copy.pk), ("Host", "Others"))
        ]
        assert [s.ids for s in loaded.screens] == [tuple(s.pk for s in slides)]
        assert [n.speaker for n in loaded.visual] == ["Screen", "Screen"]

    def test_the_current_brief_cites_what_the_record_holds_by_each_groups_first_copy(
        self, meeting, mic, system_audio, make_session, owner, make_stream
    ) -> None:
        started(meeting)
        line = say(mic, "We ship on Friday", 5000, final=True, session_start_ms=START_MS)
        interim = say(mic, "and th", 9000, session_start_ms=START_MS)
        first = note(mic, "Decision: ship on Friday", START_MS + 30_000)
        copy = note(system_audio, "Decision: ship on Friday", START_MS + 30_000)
        elsewhere = say(make_stream(make_session(owner), "mic:default"), "x", 1000, final=True)
        evidence = [
            {"kind": "audio", "id": copy.pk},
            {"kind": "audio", "id": first.pk},
            {"kind": "transcript", "id": interim.pk},
            {"kind": "transcript", "id": elsewhere.pk},
            {"kind": "visual", "id": first.pk},  # the right id, the wrong kind
            {"kind": "transcript", "id": True},
            {"kind": "transcript", "id": line.pk},
            "junk",
        ]
        for kind, key, position in (("action", "a", 0), ("summary", "s", 1), ("summary", "t", 0)):
            BriefItem.objects.create(session=meeting, kind=kind, key=key, text=key,
                                     evidence=evidence, position=position)  # fmt: skip
        BriefItem.objects.create(session=meeting, kind="decision", key="old", text="old",
                                 is_current=False)  # fmt: skip

        loaded = record.load(meeting)

        assert [(p.kind, p.text) for p in loaded.brief] == [
            ("summary", "t"),
            ("summary", "s"),
            ("action", "a"),
        ]
        assert loaded.brief[0].evidence == (
            record.Cited("audio", first.pk, START_MS + 30_000, 30_000),
            record.Cited("transcript", line.pk, START_MS + 5000, 5000),
        )

    def test_questions_with_an_outcome_are_kept_oldest_first(self, meeting) -> None:
        now = datetime(2025, 3, 5, 8, tzinfo=UTC)
        for n, outcome in enumerate(["failed", "answered", "pending", "not_discussed"]):
            Question.objects.create(session=meeting, question=outcome, outcome=outcome,
                                    asked_at=now - timedelta(minutes=n))  # fmt: skip

        loaded = record.load(meeting)

        assert [(q.question, q.outcome) for q in loaded.questions] == [
            ("not_discussed", "not_discussed"),
            ("answered", "answered"),
        ]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (10_000, 100_000, "00:10\u201301:40"),
        (10_000, 10_400, "00:10"),
        (0, 3_600_000, "00:00\u20131:00:00"),
    ],
)
def test_format_range_joins_two_offsets_with_an_en_dash(
    start: int, end: int, expected: str
) -> None:
    assert record.format_range(start, end) == expected
