"""Exports: each format read back by a real parser (srt, webvtt-py, json), the JSON schema
pinned key by key, and text from VideoDB unable to forge cues or inject markup."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta

import pytest
import srt
import webvtt
from django.db.models import F

from sessions_app.history import exports, record
from sessions_app.models import (
    BriefItem,
    CaptureSession,
    Question,
    RTStream,
    ShareLink,
    TranscriptSegment,
)
from tests.conftest import ROOT
from tests.sessions_app.conftest import HOSTILE, fire, note, say

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
START_MS = 1_741_080_600_000
NOW = datetime(2025, 3, 5, 8, 0, 0, tzinfo=UTC)

# A cue break followed by what an SRT or WebVTT reader would take for a new cue.
FORGED_SRT = "ok\n\n2\n00:00:01,000 --> 00:00:02,000\nfake"
FORGED_VTT = "ok\n\n00:00:01.000 --> 00:00:02.000\nfake\r\n\r\nmore --> 00:00:03.000"
UNICODE = "Grüße aus Köln — 東京で会いましょう 🎉 naïve café"


def export(session: CaptureSession, fmt: str) -> exports.Export:
    return exports.render(record.load(session), fmt, now=NOW)


def parse_vtt(content: str) -> webvtt.WebVTT:
    # strict: a malformed cue block is an error, not silently skipped
    return webvtt.from_string(content, strict=True)


@pytest.fixture
def recorded(meeting: CaptureSession, mic: RTStream, system_audio, screen) -> CaptureSession:
    """A meeting that started at START and ended 2 min later: two speakers, a slide, a
    decision and an alert."""
    CaptureSession.objects.filter(pk=meeting.pk).update(
        started_at=START,
        ended_at=START + timedelta(minutes=2),
        status=CaptureSession.Status.STOPPED,
    )
    meeting.refresh_from_db()
    RTStream.objects.filter(pk=mic.pk).update(speaker_label="Alice")
    say(mic, "Let's start with the roadmap", 1000, final=True, session_start_ms=START_MS)
    say(system_audio, "Sounds good", 83_250, final=True, session_start_ms=START_MS)
    say(mic, "And then pric", 90_000, session_start_ms=START_MS)  # interim: not exported
    note(screen, "Q3 roadmap slide", START_MS + 2000, kind="visual")
    note(mic, "Decision: ship on Friday", START_MS + 60_000)
    fire(screen, "pricing_shared", START_MS + 5000, text="Price list visible", confidence=0.92)
    return meeting


def test_formats_name_their_label_type_and_extension() -> None:
    assert {key: (f.label, f.extension) for key, f in exports.FORMATS.items()} == {
        "md": ("Markdown", "md"),
        "srt": ("SubRip (SRT)", "srt"),
        "vtt": ("WebVTT", "vtt"),
        "json": ("JSON", "json"),
    }
    for spec in exports.FORMATS.values():
        assert spec.content_type.endswith("; charset=utf-8")


def test_an_unknown_format_is_refused(meeting) -> None:
    with pytest.raises(KeyError):
        export(meeting, "docx")


class TestFilename:
    @pytest.mark.parametrize("fmt", ["md", "srt", "vtt", "json"])
    def test_it_is_the_slugified_title_the_id_and_the_extension(self, meeting, fmt) -> None:
        assert export(meeting, fmt).filename == f"q3-roadmap-review-{meeting.pk}.{fmt}"

    def test_a_title_with_nothing_to_slugify_falls_back_to_session(
        self, make_session, owner
    ) -> None:
        session = make_session(owner, title="東京 !!!")
        assert export(session, "srt").filename == f"session-{session.pk}.srt"

    def test_a_hostile_title_gives_a_plain_ascii_name(self, make_session, owner) -> None:
        session = make_session(owner, title='../../etc/passwd"; x=<y>\r\nSet-Cookie: a')
        name = export(session, "json").filename
        assert name == f"etcpasswd-xy-set-cookie-a-{session.pk}.json"


class TestSrt:
    def test_each_final_line_is_one_numbered_cue_timed_from_the_start(self, recorded) -> None:
        result = export(recorded, "srt")

        cues = list(srt.parse(result.content))

        assert result.content_type == "application/x-subrip; charset=utf-8"
        assert [(c.index, c.start, c.end, c.content) for c in cues] == [
            (
                1,
                timedelta(seconds=1),
                timedelta(seconds=2.5),
                "Alice: Let's start with the roadmap",
            ),
            (2, timedelta(seconds=83.25), timedelta(seconds=84.75), "Others: Sounds good"),
        ]
        assert "00:01:23,250 --> 00:01:24,750" in result.content

    def test_a_cue_whose_end_is_not_after_its_start_lasts_the_minimum(self, recorded, mic) -> None:
        segment = say(mic, "Hm", 100_000, final=True, session_start_ms=START_MS)
        TranscriptSegment.objects.filter(pk=segment.pk).update(end_ms=F("start_ms"))
        say(mic, "Before the start", -5000, final=True, session_start_ms=START_MS)

        cues = list(srt.parse(export(recorded, "srt").content))

        first, last = cues[0], cues[-1]
        assert (first.content, first.start, first.end) == (
            "Alice: Before the start",
            timedelta(0),
            timedelta(milliseconds=exports.MIN_CUE_MS),
        )
        assert (last.content, last.start, last.end) == (
            "Alice: Hm",
            timedelta(seconds=100),
            timedelta(seconds=100, milliseconds=exports.MIN_CUE_MS),
        )

    def test_hours_are_written_past_the_first_hour(self, recorded, mic) -> None:
        say(mic, "Still here", 3_723_004, final=True, session_start_ms=START_MS)

        content = export(recorded, "srt").content

        assert "01:02:03,004 --> 01:02:04,504\nAlice: Still here\n" in content
        assert list(srt.parse(content))[-1].start == timedelta(seconds=3723.004)

    def test_text_with_blank_lines_and_arrows_cannot_forge_a_cue(self, recorded, mic) -> None:
        say(mic, FORGED_SRT, 100_000, final=True, session_start_ms=START_MS)

        cues = list(srt.parse(export(recorded, "srt").content))

        assert len(cues) == 3
        assert cues[-1].content == "Alice: ok 2 00:00:01,000 -> 00:00:02,000 fake"
        assert cues[-1].start == timedelta(seconds=100)

    def test_a_hostile_speaker_label_stays_inside_its_cue(self, recorded, mic) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label="Eve\n\n9\n00:00:00,000 --> x")

        cues = list(srt.parse(export(recorded, "srt").content))

        assert len(cues) == 2
        assert cues[0].content == "Eve 9 00:00:00,000 -> x: Let's start with the roadmap"

    def test_unicode_text_round_trips(self, recorded, mic) -> None:
        say(mic, UNICODE, 100_000, final=True, session_start_ms=START_MS)

        cues = list(srt.parse(export(recorded, "srt").content))

        assert cues[-1].content == f"Alice: {UNICODE}"


class TestWebVtt:
    def test_each_final_line_is_a_cue_with_its_speaker_as_the_voice(self, recorded) -> None:
        result = export(recorded, "vtt")

        captions = parse_vtt(result.content).captions

        assert result.content.startswith("WEBVTT\n\n")
        assert result.content_type == "text/vtt; charset=utf-8"
        assert [(c.start, c.end, c.voice, c.text) for c in captions] == [
            ("00:00:01.000", "00:00:02.500", "Alice", "Let's start with the roadmap"),
            ("00:01:23.250", "00:01:24.750", "Others", "Sounds good"),
        ]
        assert captions[0].raw_text == "<v Alice>Let's start with the roadmap"

    def test_markup_in_text_and_speaker_is_escaped_and_reads_back_unchanged(
        self, recorded, mic
    ) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label="R&D <lead>")
        say(mic, HOSTILE, 100_000, final=True, session_start_ms=START_MS)

        content = export(recorded, "vtt").content
        captions = parse_vtt(content).captions

        assert "<img" not in content and "<b" not in content and "</div>" not in content
        last = captions[-1]
        assert last.raw_text.startswith("<v R&amp;D &lt;lead&gt;>&lt;img src=x")
        assert html.unescape(last.voice) == "R&D <lead>"
        assert html.unescape(last.text) == HOSTILE

    def test_text_with_blank_lines_and_arrows_cannot_forge_a_cue(self, recorded, mic) -> None:
        say(mic, FORGED_VTT, 100_000, final=True, session_start_ms=START_MS)

        content = export(recorded, "vtt").content
        captions = parse_vtt(content).captions

        assert len(captions) == 3
        assert content.count("-->") == 3  # the three timing lines, nothing else
        assert html.unescape(captions[-1].text) == (
            "ok 00:00:01.000 --> 00:00:02.000 fake more --> 00:00:03.000"
        )

    def test_a_cue_whose_end_is_not_after_its_start_lasts_the_minimum(self, recorded, mic) -> None:
        segment = say(mic, "Hm", 100_000, final=True, session_start_ms=START_MS)
        TranscriptSegment.objects.filter(pk=segment.pk).update(end_ms=F("start_ms"))

        last = parse_vtt(export(recorded, "vtt").content).captions[-1]

        assert (last.start, last.end, last.text) == ("00:01:40.000", "00:01:41.000", "Hm")

    def test_unicode_text_round_trips(self, recorded, system_audio) -> None:
        RTStream.objects.filter(pk=system_audio.pk).update(speaker_label="Zoë")
        say(system_audio, UNICODE, 100_000, final=True, session_start_ms=START_MS)

        last = parse_vtt(export(recorded, "vtt").content).captions[-1]

        assert (last.voice, last.text) == ("Zoë", UNICODE)


class TestJson:
    TOP = [
        "schema",
        "version",
        "exported_at",
        "session",
        "streams",
        "transcript",
        "visual",
        "audio",
        "alerts",
        "brief",
        "questions",
    ]
    SESSION = [
        "id",
        "uuid",
        "title",
        "status",
        "videodb_id",
        "created_at",
        "started_at",
        "ended_at",
        "origin_ms",
        "duration_ms",
        "player_url",
        "exported_video_id",
    ]
    STREAM = ["id", "videodb_id", "name", "channel", "speaker", "media_types"]
    LINE = [
        "id",
        "stream_id",
        "speaker",
        "channel",
        "start_ms",
        "end_ms",
        "offset_ms",
        "end_offset_ms",
        "text",
    ]
    NOTE = [
        "id",
        "kind",
        "stream_id",
        "channel",
        "start_ms",
        "end_ms",
        "offset_ms",
        "end_offset_ms",
        "text",
        "same_as",
    ]
    ALERT = [
        "id",
        "label",
        "triggered",
        "confidence",
        "stream_id",
        "channel",
        "start_ms",
        "end_ms",
        "offset_ms",
        "end_offset_ms",
        "text",
    ]

    def test_every_documented_key_is_there_in_order_and_nothing_else(self, recorded) -> None:
        data = json.loads(export(recorded, "json").content)

        assert list(data) == self.TOP
        assert list(data["session"]) == self.SESSION
        assert [list(s) for s in data["streams"]] == [self.STREAM] * 3
        assert [list(item) for item in data["transcript"]] == [self.LINE] * 2
        assert [list(item) for item in data["visual"]] == [self.NOTE]
        assert [list(item) for item in data["audio"]] == [self.NOTE]
        assert [list(item) for item in data["alerts"]] == [self.ALERT]

    def test_the_schema_keys_are_the_ones_the_docs_describe(self) -> None:
        text = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
        for key in {*self.TOP, *self.SESSION, *self.STREAM, *self.LINE, *self.NOTE, *self.ALERT}:
            assert f"`{key}`" in text, key

    def test_values_describe_the_session_and_its_items(self, recorded, mic, screen) -> None:
        result = export(recorded, "json")
        data = json.loads(result.content)

        assert result.content_type == "application/json; charset=utf-8"
        assert (data["schema"], data["version"]) == ("copilot.session-export", 2)
        assert data["exported_at"] == "2025-03-05T08:00:00+00:00"
        assert data["session"] == {
            "id": recorded.pk,
            "uuid": str(recorded.uuid),
            "title": "Q3 roadmap review",
            "status": "stopped",
            "videodb_id": recorded.videodb_id,
            "created_at": recorded.created_at.isoformat(),
            "started_at": "2025-03-04T09:30:00+00:00",
            "ended_at": "2025-03-04T09:32:00+00:00",
            "origin_ms": START_MS,
            "duration_ms": 120_000,
            "player_url": None,
            "exported_video_id": None,
        }
        assert data["streams"][0] == {
            "id": screen.pk,
            "videodb_id": screen.videodb_id,
            "name": "display:1",
            "channel": "screen",
            "speaker": "Screen",
            "media_types": ["video"],
        }
        first = data["transcript"][0]
        assert first["stream_id"] == mic.pk
        assert (first["speaker"], first["channel"], first["text"]) == (
            "Alice",
            "mic",
            "Let's start with the roadmap",
        )
        assert (first["start_ms"], first["end_ms"]) == (START_MS + 1000, START_MS + 2500)
        assert (first["offset_ms"], first["end_offset_ms"]) == (1000, 2500)
        assert [t["text"] for t in data["transcript"]] == [
            "Let's start with the roadmap",
            "Sounds good",
        ]
        assert data["visual"][0]["kind"] == "visual" and data["audio"][0]["kind"] == "audio"
        alert = data["alerts"][0]
        assert (alert["label"], alert["triggered"], alert["confidence"]) == (
            "pricing_shared",
            True,
            0.92,
        )
        assert (alert["text"], alert["offset_ms"]) == ("Price list visible", 5000)

    def test_an_exported_session_names_its_video(self, recorded) -> None:
        CaptureSession.objects.filter(pk=recorded.pk).update(
            exported_video_id="m-123", player_url="https://console.videodb.io/player?v=m-123"
        )
        recorded.refresh_from_db()

        session = json.loads(export(recorded, "json").content)["session"]

        assert session["exported_video_id"] == "m-123"
        assert session["player_url"] == "https://console.videodb.io/player?v=m-123"

    def test_no_secret_token_or_owner_detail_is_exported(self, recorded, owner) -> None:
        owner.email = "olivia@example.com"
        owner.save(update_fields=["email"])
        link = ShareLink.objects.create(session=recorded, created_by=owner)

        content = export(recorded, "json").content

        assert recorded.webhook_secret not in content
        assert link.token not in content
        lowered = content.lower()
        for word in ("olivia", "owner", "email", "secret", "token"):
            assert word not in lowered, word

    def test_unicode_and_markup_are_kept_verbatim_and_not_ascii_escaped(
        self, recorded, mic
    ) -> None:
        say(mic, f"{UNICODE}\n{HOSTILE}", 100_000, final=True, session_start_ms=START_MS)

        content = export(recorded, "json").content

        assert UNICODE in content
        assert json.loads(content)["transcript"][-1]["text"] == f"{UNICODE}\n{HOSTILE}"


class TestMarkdown:
    def test_it_has_the_title_facts_and_every_section_in_time_order(self, recorded) -> None:
        result = export(recorded, "md")
        md = result.content

        assert result.content_type == "text/markdown; charset=utf-8"
        assert md.startswith("# Q3 roadmap review\n")
        assert "- **Started:** 2025-03-04T09:30:00Z\n" in md
        assert "- **Duration:** 02:00\n" in md
        assert "- **Status:** Stopped\n" in md
        assert "- **Speakers:** Alice, Others\n" in md
        assert "- **Recorded:** 2 transcript lines, 1 on-screen note, 1 insight, 1 alert\n" in md
        sections = ["## Transcript", "## On screen", "## Insights", "## Alerts"]
        assert [md.index(s) for s in sections] == sorted(md.index(s) for s in sections)
        transcript = md.split("## Transcript")[1].split("## On screen")[0]
        assert transcript == (
            "\n\n**[00:01] Alice:** Let's start with the roadmap\n\n"
            "**[01:23] Others:** Sounds good\n\n"
        )
        assert "pric" not in transcript  # the interim line
        assert "- **[00:02\u201300:07]** Q3 roadmap slide\n" in md  # a span: its range
        assert "- **[01:00]** Decision: ship on Friday\n" in md
        assert "- **Pricing shared** at 00:05 (92% confidence): Price list visible\n" in md

    def test_an_alert_without_confidence_or_trigger_says_so(self, recorded, screen) -> None:
        alert = fire(screen, "quiet", START_MS + 7000, confidence=None)
        type(alert).objects.filter(pk=alert.pk).update(triggered=False)

        md = export(recorded, "md").content

        assert "- **Quiet** at 00:07 (not triggered)\n" in md

    def test_hostile_text_cannot_become_html_links_images_or_headings(
        self, recorded, mic, screen
    ) -> None:
        CaptureSession.objects.filter(pk=recorded.pk).update(title=f"# {HOSTILE}")
        recorded.refresh_from_db()
        RTStream.objects.filter(pk=mic.pk).update(speaker_label=HOSTILE)
        links = "![pixel](https://evil.test/p.png) [click](javascript:alert(1)) <https://x.test>"
        line = f"{HOSTILE}\n# Heading\n\n---\n{links}"
        say(mic, line, 100_000, final=True, session_start_ms=START_MS)
        markup = f"{HOSTILE} `code` *bold* _em_ ~~gone~~ | a | b |"
        note(screen, markup, START_MS + 9000, kind="visual")
        fire(screen, "pricing_shared", START_MS + 9000, text=f"&lt;script&gt; {HOSTILE}")

        md = export(recorded, "md").content

        for raw in ("<img", "<b", "</div>", "<https", "<script", "&lt;script"):
            assert raw not in md, raw
        assert "](" not in md.replace("\\](", "")  # every link/image bracket is escaped
        assert "\n# Heading" not in md and "\n---" not in md
        assert md.count("\n# ") == 0 and md.startswith("# \\# &lt;img src=x")
        assert "**[01:40] &lt;img src=x onerror=alert(1)&gt;" in md
        assert "\\!" not in md and "\\[pixel\\](https://evil.test/p.png)" in md
        assert "\\`code\\` \\*bold\\* \\_em\\_ \\~\\~gone\\~\\~ \\| a \\| b \\|" in md
        assert "&amp;lt;script&amp;gt;" in md

    def test_unicode_text_round_trips(self, recorded, mic) -> None:
        say(mic, UNICODE, 100_000, final=True, session_start_ms=START_MS)

        assert f"**[01:40] Alice:** {UNICODE}\n" in export(recorded, "md").content


class TestEmptySession:
    def test_every_format_is_still_a_valid_file(self, meeting) -> None:
        md, srt_file, vtt, data = (export(meeting, f).content for f in ("md", "srt", "vtt", "json"))

        assert list(srt.parse(srt_file)) == []
        assert vtt.startswith("WEBVTT") and parse_vtt(vtt).captions == []
        parsed = json.loads(data)
        assert [parsed[k] for k in ("streams", "transcript", "visual", "audio", "alerts")] == [
            [],
            [],
            [],
            [],
            [],
        ]
        assert parsed["session"]["started_at"] is None
        assert parsed["session"]["duration_ms"] == 0
        for empty in (
            "- **Started:** not started",
            "- **Speakers:** nobody",
            "Nothing was said.",
            "Nothing was described on screen.",
            "No insights were recorded.",
            "No alerts fired.",
        ):
            assert empty in md


# --- repetitions shown once, the brief and the questions (schema version 2) -----------------


def brief_item(session, kind, text, evidence, *, position=0, **fields) -> BriefItem:
    return BriefItem.objects.create(
        session=session,
        kind=kind,
        key=f"{kind}-{position}-{text[:20]}",
        text=text,
        evidence=evidence,
        position=position,
        **fields,
    )


def asked(session, question, answer, evidence, *, outcome="answered", minutes=0) -> Question:
    return Question.objects.create(
        session=session,
        question=question,
        answer=answer,
        evidence=evidence,
        outcome=outcome,
        asked_at=NOW + timedelta(minutes=minutes),
        answered_at=NOW + timedelta(minutes=minutes, seconds=5) if outcome != "pending" else None,
    )


def ev(kind: str, item) -> dict:
    return {"kind": kind, "id": item.pk}


@pytest.fixture
def rich(recorded, mic, system_audio, screen, make_session, owner, make_stream) -> dict:
    """``recorded`` with what VideoDB repeats (the decision from the other channel and in the
    next window, the slide described three more times), an interim line, a brief citing all
    of it (and things the file cannot hold) and questions in every outcome."""
    decision = recorded.insights.get(kind="audio")
    slide = recorded.insights.get(kind="visual")
    again = note(system_audio, "Decision: ship on Friday", START_MS + 60_000)
    later = note(mic, "Decision: ship on Friday", START_MS + 90_000)
    slides = [note(screen, "Q3 roadmap slide", START_MS + s * 1000, kind="visual")
              for s in (12, 22, 32)]  # fmt: skip
    lines = {line.text: line for line in recorded.segments.filter(is_final=True)}
    first, second = lines["Let's start with the roadmap"], lines["Sounds good"]
    interim = recorded.segments.get(is_final=False)
    alert = recorded.alerts.get()
    elsewhere = say(make_stream(make_session(owner), "mic:default"), "Other", 1000, final=True)
    brief_item(recorded, "summary", "The roadmap was reviewed", [ev("transcript", first)])
    brief_item(
        recorded,
        "decision",
        "Ship on Friday",
        [ev("audio", later), ev("audio", again), ev("audio", decision), ev("visual", slides[2])],
    )
    brief_item(
        recorded,
        "action",
        "Send the notes",
        [ev("transcript", second), ev("transcript", interim), ev("transcript", elsewhere),
         {"kind": "audio", "id": "7"}, "junk", {"kind": "bogus", "id": first.pk}],
        owner="Alice", due="Monday", status="open",
    )  # fmt: skip
    brief_item(recorded, "question", "Which tier?", [ev("alert", alert)])
    brief_item(recorded, "decision", "An older point", [ev("transcript", first)],
               position=1, is_current=False)  # fmt: skip
    asked(recorded, "When do we ship?", "On Friday.", [ev("audio", again)], minutes=1)
    asked(recorded, "Any budget?", "", [], outcome="not_discussed", minutes=2)
    asked(recorded, "Still thinking?", "", [], outcome="pending", minutes=3)
    asked(recorded, "Broken?", "", [], outcome="failed", minutes=4)
    return {"decision": decision, "slide": slide, "again": again, "later": later,
            "slides": slides, "first": first, "second": second, "alert": alert}  # fmt: skip


class TestRepetitionsInExports:
    def test_markdown_lists_each_insight_once_and_the_screen_as_spans(self, rich) -> None:
        md = export(rich["decision"].session, "md").content

        assert (
            "- **Recorded:** 2 transcript lines, 1 on-screen note (4 descriptions), "
            "1 insight (3 reported), 1 alert\n"
        ) in md
        assert "- **[00:02\u201300:37]** Q3 roadmap slide\n" in md
        assert "- **[01:00]** Decision: ship on Friday (reported 3 times: Alice, Others)\n" in md
        assert md.count("Q3 roadmap slide") == 1 and md.count("Decision: ship on Friday") == 1

    def test_json_keeps_every_copy_and_says_which_group_each_is_in(self, rich) -> None:
        data = json.loads(export(rich["decision"].session, "json").content)

        first_decision, first_slide = rich["decision"].pk, rich["slide"].pk
        assert {(i["id"], i["same_as"]) for i in data["audio"]} == {
            (first_decision, None),
            (rich["again"].pk, first_decision),
            (rich["later"].pk, first_decision),
        }
        assert [i["same_as"] for i in data["visual"]] == [None] + [first_slide] * 3
        assert len(data["visual"]) == 4 and len(data["audio"]) == 3


class TestBriefAndQuestions:
    def test_json_has_the_current_brief_with_evidence_from_the_same_file(self, rich) -> None:
        brief = json.loads(export(rich["decision"].session, "json").content)["brief"]

        assert list(brief) == ["summary", "decisions", "action_items", "open_questions"]
        assert [list(item) for item in brief["summary"]] == [["id", "text", "evidence"]]
        assert [item["text"] for item in brief["decisions"]] == ["Ship on Friday"]
        # Copies of one insight are cited once, by the group's first copy.
        assert brief["decisions"][0]["evidence"] == [
            {"kind": "audio", "id": rich["decision"].pk},
            {"kind": "visual", "id": rich["slide"].pk},
        ]
        (action,) = brief["action_items"]
        assert list(action) == ["id", "text", "owner", "due", "status", "evidence"]
        assert (action["owner"], action["due"], action["status"]) == ("Alice", "Monday", "open")
        # The interim line, another session's line and malformed evidence are left out.
        assert action["evidence"] == [{"kind": "transcript", "id": rich["second"].pk}]
        assert brief["open_questions"][0]["evidence"] == [{"kind": "alert", "id": rich["alert"].pk}]

    def test_json_has_the_answered_and_not_discussed_questions_oldest_first(self, rich) -> None:
        questions = json.loads(export(rich["decision"].session, "json").content)["questions"]

        assert [(q["question"], q["outcome"]) for q in questions] == [
            ("When do we ship?", "answered"),
            ("Any budget?", "not_discussed"),
        ]
        assert list(questions[0]) == [
            "id", "question", "answer", "outcome", "asked_at", "answered_at", "evidence",
        ]  # fmt: skip
        assert questions[0]["answer"] == "On Friday."
        assert questions[0]["evidence"] == [{"kind": "audio", "id": rich["decision"].pk}]
        assert questions[0]["asked_at"] == "2025-03-05T08:01:00+00:00"

    def test_every_evidence_id_is_an_item_of_the_same_file(self, rich) -> None:
        data = json.loads(export(rich["decision"].session, "json").content)
        held = {
            "transcript": {i["id"] for i in data["transcript"]},
            "visual": {i["id"] for i in data["visual"] if i["same_as"] is None},
            "audio": {i["id"] for i in data["audio"] if i["same_as"] is None},
            "alert": {i["id"] for i in data["alerts"]},
        }
        cited = [
            ref
            for items in [*data["brief"].values(), data["questions"]]
            for item in items
            for ref in item["evidence"]
        ]

        assert len(cited) == 6
        for ref in cited:
            assert list(ref) == ["kind", "id"] and ref["id"] in held[ref["kind"]], ref

    def test_markdown_has_the_brief_and_the_questions_with_their_moments(self, rich) -> None:
        md = export(rich["decision"].session, "md").content

        order = ["- **Recorded:**", "## Brief", "### Summary", "### Decisions", "### Action items",
                 "### Open questions", "## Questions", "## Transcript"]  # fmt: skip
        assert [md.index(s) for s in order] == sorted(md.index(s) for s in order)
        assert "- The roadmap was reviewed [00:01]\n" in md
        assert "- Ship on Friday [01:00] [00:02]\n" in md
        assert "- Send the notes (owner: Alice, due: Monday, open) [01:23]\n" in md
        assert "- Which tier? [00:05]\n" in md
        assert "- **Q:** When do we ship?\n  **A:** On Friday. [01:00]\n" in md
        assert "- **Q:** Any budget?\n  **A:** Not discussed.\n" in md
        for left_out in ("An older point", "Still thinking?", "Broken?"):
            assert left_out not in md

    def test_text_from_the_model_is_escaped_in_markdown(self, recorded) -> None:
        brief_item(recorded, "action", f"{HOSTILE} [x](javascript:alert(1))", [],
                   owner="<b>Eve</b>", due="# soon")  # fmt: skip
        asked(recorded, f"# {HOSTILE}", f"{HOSTILE}\n# Heading", [])

        md = export(recorded, "md").content

        for raw in ("<img", "<b", "</div>"):
            assert raw not in md, raw
        assert "](" not in md.replace("\\](", "")  # the link's brackets are escaped
        assert "\n# Heading" not in md and md.count("\n# ") == 0
        assert "owner: &lt;b&gt;Eve&lt;/b&gt;, due: \\# soon" in md

    def test_a_session_without_a_brief_or_questions_says_so(self, recorded) -> None:
        md = export(recorded, "md").content
        data = json.loads(export(recorded, "json").content)

        assert "## Brief\n\nNo brief was made.\n" in md
        assert "## Questions\n\nNo questions were answered.\n" in md
        assert data["brief"] == {
            "summary": [], "decisions": [], "action_items": [], "open_questions": [],
        }  # fmt: skip
        assert data["questions"] == []

    def test_the_new_keys_are_documented(self) -> None:
        text = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
        for key in ("brief", "questions", "same_as", "summary", "decisions", "action_items",
                    "open_questions", "owner", "due", "status", "evidence", "outcome",
                    "asked_at", "answered_at", "answer", "question"):  # fmt: skip
            assert f"`{key}`" in text, key
        assert "version 2" in text.lower()
