"""Numbered sources: the record as the model sees it. Both audio channels merged in time order
with their speakers, the screen as spans, each insight once, the alerts that fired; every
number resolves to the stored item it stands for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sessions_app.history import record
from sessions_app.intelligence import sources
from sessions_app.models import CaptureSession, RTStream
from tests.sessions_app.conftest import fire, note, say

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
START_MS = 1_741_080_600_000


@pytest.fixture
def started(meeting: CaptureSession) -> CaptureSession:
    CaptureSession.objects.filter(pk=meeting.pk).update(started_at=START)
    meeting.refresh_from_db()
    return meeting


def numbered(session: CaptureSession, **kwargs) -> list[sources.Source]:
    loaded = record.load(session)
    return sources.number(sources.moments(loaded, **kwargs), origin_ms=loaded.origin_ms)


def test_both_channels_are_merged_in_time_order_with_their_speakers(
    started, mic: RTStream, system_audio: RTStream
) -> None:
    RTStream.objects.filter(pk=system_audio.pk).update(speaker_label="Dana")
    first = say(mic, "Shall we start with pricing?", START_MS + 1_000, final=True)
    reply = say(system_audio, "Yes, pricing first.", START_MS + 3_000, final=True)
    later = say(mic, "Great.", START_MS + 65_000, final=True)

    found = numbered(started)

    assert [(s.number, s.kind, s.ids, s.label) for s in found] == [
        (1, "transcript", (first.pk,), mic.speaker),
        (2, "transcript", (reply.pk,), "Dana"),
        (3, "transcript", (later.pk,), mic.speaker),
    ]
    assert found[1].line() == "[2] 00:03 Dana: Yes, pricing first."
    assert found[2].line().startswith("[3] 01:05 ")


def test_interim_text_is_never_a_source(started, mic: RTStream) -> None:
    say(mic, "Let's st", START_MS + 1_000)
    assert numbered(started) == []


def test_an_unchanged_screen_is_one_span_citing_its_first_description(
    started, screen: RTStream
) -> None:
    first = note(screen, "Pricing page: three tiers.", START_MS + 10_000, kind="visual")
    note(screen, "Pricing page: three tiers.", START_MS + 20_000, kind="visual")
    note(screen, "Pricing page: three tiers.", START_MS + 30_000, kind="visual")
    other = note(screen, "A spreadsheet comparing vendors.", START_MS + 40_000, kind="visual")

    found = numbered(started)

    assert [s.ids[0] for s in found] == [first.pk, other.pk]
    assert len(found[0].ids) == 3
    assert found[0].line() == "[1] 00:10-00:35 screen: Pricing page: three tiers."
    assert found[0].evidence == sources.Evidence("visual", first.pk)


def test_an_insight_repeated_on_both_channels_is_one_source(
    started, mic: RTStream, system_audio: RTStream
) -> None:
    once = note(mic, "Decision: start with 100 seats.", START_MS + 30_000)
    note(system_audio, "Decision: start with 100 seats.", START_MS + 30_000)

    found = numbered(started)

    assert [(s.kind, s.ids[0], s.label, len(s.ids)) for s in found] == [
        ("audio", once.pk, "insight", 2)
    ]


def test_only_alerts_that_fired_are_sources(started, mic: RTStream) -> None:
    fired = fire(mic, "pricing_discussed", START_MS + 5_000, text="Price came up")
    quiet = fire(mic, "legal_risk", START_MS + 6_000)
    type(quiet).objects.filter(pk=quiet.pk).update(triggered=False)

    found = numbered(started)

    assert [(s.kind, s.ids, s.text) for s in found] == [
        ("alert", (fired.pk,), "Pricing discussed (Price came up)")
    ]


def test_after_ms_keeps_only_what_came_later(started, mic: RTStream) -> None:
    say(mic, "Old news.", START_MS + 1_000, final=True)
    new = say(mic, "New news.", START_MS + 9_000, final=True)

    found = numbered(started, after_ms=START_MS + 5_000)

    assert [s.ids for s in found] == [(new.pk,)]


def test_a_very_long_line_is_cut_and_whitespace_folded(started, mic: RTStream) -> None:
    say(mic, "word\n" * 400, START_MS + 1_000, final=True)
    line = numbered(started)[0].line()
    assert "\n" not in line and line.endswith("…")
    assert len(line) < sources.MAX_SOURCE_CHARS + 40
