"""A bundled meeting stored the way the relay stores it (``ingest.store``: each final line,
screen description and insight once, numbered), at the script's times after the session
started: the record the brief reads, without playing the meeting in real time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from sessions_app.history.record import epoch_ms
from sessions_app.intelligence import schedule
from sessions_app.live import ingest
from sessions_app.live.events import InsightInput, TranscriptInput
from sessions_app.models import CaptureSession, RTStream, User
from videodb_emulator.scripts import BUNDLED_DIR, load_script

CHANNELS = {"mic": "mic:default", "system_audio": "system_audio:default", "screen": "display:1"}


def live_session(
    make_session: Callable[..., CaptureSession],
    make_stream: Callable[..., RTStream],
    owner: User,
    *,
    started_minutes_ago: float = 0,
    **fields: object,
) -> CaptureSession:
    """An active session with a microphone, the system audio and a screen."""
    fields.setdefault("title", "Q3 product planning")
    session = make_session(
        owner,
        status=CaptureSession.Status.ACTIVE,
        started_at=timezone.now() - timedelta(minutes=started_minutes_ago),
        **fields,
    )
    for name in CHANNELS.values():
        # The bundled meetings' microphone is Priya; the system audio carries everyone else.
        make_stream(session, name, speaker_label="Priya" if name == CHANNELS["mic"] else "")
    return session


def store_meeting(
    session: CaptureSession,
    name: str = "product_planning",
    *,
    from_s: float = 0,
    until_s: float | None = None,
    lines: list[str | tuple[str, str]] | None = None,
) -> int:
    """Store the script's utterances (and screen and insights) starting in
    [from_s, until_s), or ``lines`` said 5 s apart from ``from_s`` on (on the microphone, or
    on the channel given with the text). Returns how many final lines were stored.

    The refresh the brief's trigger enqueued while storing never runs here (its task is sent
    on commit): the reservation it took is given back, and the test refreshes itself."""
    held = CaptureSession.objects.values_list("brief_claimed_at", flat=True).get(pk=session.pk)
    try:
        return _store(session, name, from_s, until_s, lines)
    finally:
        reserved = CaptureSession.objects.values_list("brief_claimed_at", flat=True).get(
            pk=session.pk
        )
        if reserved is not None and reserved != held:
            schedule.release(session.pk, reserved)


def _store(
    session: CaptureSession,
    name: str,
    from_s: float,
    until_s: float | None,
    lines: list[str | tuple[str, str]] | None,
) -> int:
    streams = {kind: session.streams.get(name=full) for kind, full in CHANNELS.items()}
    base = epoch_ms(session.started_at)

    def at(seconds: float) -> int:
        return base + int(seconds * 1000)

    def wanted(start: float) -> bool:
        return start >= from_s and (until_s is None or start < until_s)

    stored = 0
    if lines is not None:
        for n, line in enumerate(lines):
            channel, text = line if isinstance(line, tuple) else ("mic", line)
            start = from_s + 5 * n
            event = TranscriptInput(
                text=text, is_final=True, start_ms=at(start), end_ms=at(start + 4)
            )
            stored += ingest.store(streams[channel], event) is not None
        return stored
    script = load_script(BUNDLED_DIR / f"{name}.toml")
    for utterance in script.utterances:
        if wanted(utterance.start):
            event = TranscriptInput(
                text=utterance.text,
                is_final=True,
                start_ms=at(utterance.start),
                end_ms=at(utterance.end),
            )
            stored += ingest.store(streams[utterance.channel], event) is not None
    for scene in script.scenes:
        if wanted(scene.start):
            event = InsightInput("visual", scene.text, at(scene.start), at(scene.end))
            ingest.store(streams["screen"], event)
    for insight in script.insights:
        if wanted(insight.start):
            event = InsightInput("audio", insight.text, at(insight.start), at(insight.end))
            ingest.store(streams[insight.channel or "mic"], event)
    return stored
