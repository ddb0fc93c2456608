"""The database itself refuses duplicates and impossible states."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions_app.models import (
    Alert,
    AlertRule,
    CaptureSession,
    Insight,
    RTStream,
    SessionEvent,
    ShareLink,
    StreamOperation,
    TranscriptSegment,
    WebhookDelivery,
)

pytestmark = pytest.mark.django_db

S = CaptureSession.Status
T0 = 1_710_000_001_234  # VideoDB epoch milliseconds


def refused(factory) -> bool:
    """True if the database refuses what ``factory`` writes."""
    try:
        with transaction.atomic():
            factory()
    except IntegrityError:
        return True
    return False


class TestUniqueIdentities:
    def test_a_videodb_session_id_is_stored_once(self, make_session, owner, stranger) -> None:
        make_session(owner, videodb_id="cap-123")
        assert refused(lambda: make_session(stranger, videodb_id="cap-123"))

    def test_sessions_not_yet_created_in_videodb_may_share_the_empty_id(
        self, make_session, owner
    ) -> None:
        make_session(owner, videodb_id=None)
        make_session(owner, videodb_id=None)
        assert CaptureSession.objects.filter(videodb_id__isnull=True).count() == 2

    def test_a_videodb_stream_id_is_stored_once(
        self, make_stream, meeting, make_session, owner
    ) -> None:
        make_stream(meeting, "mic:default", videodb_id="rts-1")
        other = make_session(owner)
        assert refused(lambda: make_stream(other, "mic:default", videodb_id="rts-1"))

    def test_a_channel_appears_once_per_session(self, make_stream, meeting) -> None:
        make_stream(meeting, "mic:default", videodb_id="rts-1")
        assert refused(lambda: make_stream(meeting, "mic:default", videodb_id="rts-2"))

    def test_an_ai_operation_is_recorded_once_per_stream(self, mic) -> None:
        StreamOperation.objects.create(stream=mic, kind="transcript", key="transcript")
        assert refused(
            lambda: StreamOperation.objects.create(stream=mic, kind="transcript", key="transcript")
        )

    def test_the_same_transcript_event_twice_stores_one_row(self, meeting, mic) -> None:
        def store() -> TranscriptSegment:
            return TranscriptSegment.objects.create(
                session=meeting,
                stream=mic,
                text="Hello",
                is_final=True,
                start_ms=T0,
                end_ms=T0 + 900,
            )

        store()
        assert refused(store)
        assert TranscriptSegment.objects.count() == 1

    def test_an_interim_segment_is_replaced_by_its_final_not_joined_by_it(
        self, meeting, mic
    ) -> None:
        interim = TranscriptSegment.objects.create(
            session=meeting,
            stream=mic,
            text="Let's schedule",
            is_final=False,
            start_ms=T0,
            end_ms=T0 + 600,
        )
        # The final shares the interim's start: it cannot become a second row...
        assert refused(
            lambda: TranscriptSegment.objects.create(
                session=meeting,
                stream=mic,
                text="Let's schedule the meeting for Thursday",
                is_final=True,
                start_ms=T0,
                end_ms=T0 + 2100,
            )
        )
        # ...so it replaces the interim in place.
        interim.text = "Let's schedule the meeting for Thursday"
        interim.is_final = True
        interim.end_ms = T0 + 2100
        interim.save()
        (only,) = TranscriptSegment.objects.all()
        assert (only.text, only.is_final) == ("Let's schedule the meeting for Thursday", True)

    def test_segments_on_different_channels_may_start_together(
        self, meeting, mic, make_stream
    ) -> None:
        others = make_stream(meeting, "system_audio:default")
        for stream in (mic, others):
            TranscriptSegment.objects.create(
                session=meeting, stream=stream, text="Hi", start_ms=T0, end_ms=T0 + 1
            )
        assert TranscriptSegment.objects.count() == 2

    def test_an_insight_window_is_stored_once_per_kind(self, meeting, make_stream) -> None:
        screen = make_stream(meeting, "display:1")

        def store(kind: str) -> Insight:
            return Insight.objects.create(
                session=meeting,
                stream=screen,
                kind=kind,
                text="Slides",
                start_ms=T0,
                end_ms=T0 + 5000,
            )

        store("visual")
        assert refused(lambda: store("visual"))
        store("audio")  # another index's window at the same time is a different insight

    def test_an_alert_arriving_by_callback_and_socket_is_stored_once(self, meeting, mic) -> None:
        def store() -> Alert:
            return Alert.objects.create(
                session=meeting,
                stream=mic,
                label="pricing",
                confidence=0.9,
                start_ms=T0,
                end_ms=T0 + 2000,
            )

        store()
        assert refused(store)

    def test_alert_rule_labels_are_unique_per_owner(self, owner, stranger) -> None:
        AlertRule.objects.create(owner=owner, label="pricing", prompt="Pricing is discussed")
        assert refused(
            lambda: AlertRule.objects.create(owner=owner, label="pricing", prompt="again")
        )
        AlertRule.objects.create(owner=stranger, label="pricing", prompt="Theirs")

    def test_a_webhook_delivery_is_stored_once_per_dedupe_key(self, meeting) -> None:
        def store() -> WebhookDelivery:
            return WebhookDelivery.objects.create(
                dedupe_key="evt-1",
                session=meeting,
                event="capture_session.active",
                raw_body="{}",
            )

        store()
        assert refused(store)


class TestImpossibleStates:
    def test_an_unknown_status_is_refused(self, make_session, owner) -> None:
        assert refused(lambda: make_session(owner, status="paused"))

    def test_a_segment_cannot_end_before_it_starts(self, meeting, mic) -> None:
        assert refused(
            lambda: TranscriptSegment.objects.create(
                session=meeting, stream=mic, text="x", start_ms=T0, end_ms=T0 - 1
            )
        )

    @pytest.mark.parametrize("confidence", [-0.1, 1.5])
    def test_alert_confidence_is_a_probability(self, meeting, mic, confidence: float) -> None:
        assert refused(
            lambda: Alert.objects.create(
                session=meeting,
                stream=mic,
                label="x",
                confidence=confidence,
                start_ms=T0,
                end_ms=T0,
            )
        )

    def test_a_session_cannot_end_before_it_started(self, make_session, owner) -> None:
        now = timezone.now()
        assert refused(
            lambda: make_session(owner, started_at=now, ended_at=now - timedelta(seconds=1))
        )


# Written out by hand, independently of CaptureSession.TRANSITIONS, so that a change to the
# lifecycle has to be made (and reviewed) in two places.
ALLOWED = {
    ("created", "starting"), ("created", "active"), ("created", "stopping"),
    ("created", "stopped"), ("created", "failed"),
    ("starting", "active"), ("starting", "stopping"), ("starting", "stopped"),
    ("starting", "failed"),
    ("active", "stopping"), ("active", "stopped"), ("active", "failed"),
    ("stopping", "stopped"), ("stopping", "exported"), ("stopping", "failed"),
    ("stopped", "exported"), ("stopped", "failed"),
}  # fmt: skip
ALL_PAIRS = [(old, new) for old in S.values for new in S.values]


class TestLifecycle:
    @pytest.mark.parametrize(("old", "new"), ALL_PAIRS)
    def test_each_status_change_is_allowed_or_refused_as_the_lifecycle_says(
        self, make_session, owner, old: str, new: str
    ) -> None:
        session = make_session(owner, status=old)
        expected = (old, new) in ALLOWED
        assert CaptureSession.can_transition(old, new) is expected
        # The database-side guard agrees with the rule.
        assert session.advance(new) is expected
        assert session.status == (new if expected else old)
        assert CaptureSession.objects.get(pk=session.pk).status == (new if expected else old)

    def test_a_late_starting_after_active_changes_nothing(self, make_session, owner) -> None:
        session = make_session(owner, status=S.ACTIVE)
        assert session.advance(S.STARTING) is False
        session.refresh_from_db()
        assert session.status == S.ACTIVE

    def test_stopped_arriving_before_active_is_taken(self, make_session, owner) -> None:
        session = make_session(owner, status=S.CREATED)
        assert session.advance(S.STOPPED, ended_at=timezone.now()) is True
        assert session.advance(S.ACTIVE) is False
        session.refresh_from_db()
        assert session.status == S.STOPPED
        assert session.ended_at is not None

    def test_two_workers_applying_the_same_change_change_it_once(self, make_session, owner) -> None:
        session = make_session(owner, status=S.ACTIVE)
        first = CaptureSession.objects.get(pk=session.pk)
        second = CaptureSession.objects.get(pk=session.pk)
        results = [first.advance(S.STOPPED), second.advance(S.STOPPED)]
        assert results == [True, False]

    def test_live_and_ended_statuses(self, make_session, owner) -> None:
        assert make_session(owner, status=S.ACTIVE).is_live
        assert make_session(owner, status=S.EXPORTED).has_ended
        assert not make_session(owner, status=S.CREATED).has_ended


class TestStreams:
    @pytest.mark.parametrize(
        ("name", "channel_id", "kind"),
        [
            ("mic:default", "", "mic"),
            ("system_audio:default", "", "system_audio"),
            ("display:1", "", "screen"),
            ("display:2", "screen", "screen"),
            ("mic:default", "mic", "mic"),
            ("camera:0", "", "other"),
        ],
    )
    def test_the_channel_kind_comes_from_the_category_or_the_name(
        self, name: str, channel_id: str, kind: str
    ) -> None:
        assert RTStream.kind_for(name, channel_id) == kind

    def test_unnamed_speakers_are_host_and_others_never_me_and_can_be_renamed(
        self, make_stream, meeting
    ) -> None:
        mic = make_stream(meeting, "mic:default")
        others = make_stream(meeting, "system_audio:default")
        assert (mic.speaker, others.speaker) == ("Host", "Others")
        others.speaker_label = "Acme buyers"
        assert others.speaker == "Acme buyers"


class TestShareLinks:
    def test_a_link_is_valid_until_revoked_or_expired(self, meeting, owner) -> None:
        now = timezone.now()
        forever = ShareLink.objects.create(session=meeting, created_by=owner)
        later = ShareLink.objects.create(
            session=meeting, created_by=owner, expires_at=now + timedelta(hours=1)
        )
        expired = ShareLink.objects.create(
            session=meeting, created_by=owner, expires_at=now - timedelta(seconds=1)
        )
        revoked = ShareLink.objects.create(session=meeting, created_by=owner, revoked_at=now)
        assert [link.is_valid() for link in (forever, later, expired, revoked)] == [
            True,
            True,
            False,
            False,
        ]
        assert set(ShareLink.objects.valid()) == {forever, later}

    def test_tokens_are_long_random_and_distinct(self, meeting, owner) -> None:
        tokens = {
            ShareLink.objects.create(session=meeting, created_by=owner).token for _ in range(20)
        }
        assert len(tokens) == 20
        assert all(len(token) >= 32 for token in tokens)


@pytest.mark.parametrize(
    ("model", "accessor"),
    [(TranscriptSegment, "segments"), (Insight, "insights"), (Alert, "alerts")],
)
def test_each_event_table_shares_the_event_fields_and_keeps_its_accessors(
    meeting, mic, model: type[SessionEvent], accessor: str
) -> None:
    shared = {"session", "stream", "start_ms", "end_ms", "seq", "created_at"}
    assert shared <= {field.name for field in model._meta.get_fields()}
    assert model._meta.ordering == ["start_ms", "id"]
    assert getattr(meeting, accessor).model is model
    assert getattr(mic, accessor).model is model


def test_the_migrations_describe_the_models_exactly() -> None:
    # Exits with status 1 (failing the test) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
