"""What Copilot stores, and the rules the database itself keeps.

Every real-time event VideoDB may deliver more than once (webhooks are at-least-once, the
relay backfills after a reconnect), so each event table has a unique constraint on the
identity VideoDB gives it: a repeat becomes a no-op in the database, not in a hopeful
``if``. Times are kept as VideoDB sends them (epoch milliseconds, ``*_ms``) and, where pages
filter or sort by them, as aware datetimes.

Nothing here imports a service, the gateway or a view: models sit at the bottom.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

# A session's webhook secret is a root that never leaves Copilot: each URL VideoDB is given
# carries a secret derived from it for that one URL (the lifecycle webhook, one alert
# callback per stream), so a leaked URL unlocks nothing else. Roots made before this carry
# no prefix; their sessions registered the root itself with VideoDB, which keeps working.
URL_SECRET_ROOT_PREFIX = "v2."  # noqa: S105 - a format marker, not a secret


def new_webhook_secret() -> str:
    return URL_SECRET_ROOT_PREFIX + secrets.token_urlsafe(32)


def url_secret(root: str, purpose: str) -> str:
    """The secret the URL for ``purpose`` carries ("lifecycle", "alert:<rtstream id>")."""
    digest = hmac.new(root.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def url_secret_ok(root: str, purpose: str, given: str) -> bool:
    """Whether ``given`` opens the URL for ``purpose``. Constant time in what is compared."""
    if hmac.compare_digest(url_secret(root, purpose).encode(), given.encode()):
        return True
    legacy = not root.startswith(URL_SECRET_ROOT_PREFIX)
    return legacy and hmac.compare_digest(root.encode(), given.encode())


def readable_label(label: str) -> str:
    """``pricing_discussed`` as people write it: "Pricing discussed"."""
    words = " ".join(label.replace("_", " ").replace("-", " ").split())
    return words[:1].upper() + words[1:]


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


class User(AbstractUser):
    """Copilot's user. Custom from day one so that fields can be added without a rewrite."""

    display_name = models.CharField(max_length=150, blank=True)

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class CaptureSession(models.Model):
    """One capture run: created by Copilot, activated by the desktop client, driven by VideoDB."""

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        STARTING = "starting", "Starting"
        ACTIVE = "active", "Active"
        STOPPING = "stopping", "Stopping"
        STOPPED = "stopped", "Stopped"
        EXPORTED = "exported", "Exported"
        FAILED = "failed", "Failed"

    # The one place the lifecycle is written down. Webhooks arrive late, duplicated and out of
    # order, so the rule is "forward only": any later state may follow an earlier one (a
    # `stopped` that overtakes `active` is taken), nothing goes back (a late `starting` after
    # `active` is a no-op), and `failed` ends any session that has not already ended.
    # `exported` follows `stopping` as well as `stopped` because the stop webhook may be lost.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.CREATED: frozenset(
            {Status.STARTING, Status.ACTIVE, Status.STOPPING, Status.STOPPED, Status.FAILED}
        ),
        Status.STARTING: frozenset({Status.ACTIVE, Status.STOPPING, Status.STOPPED, Status.FAILED}),
        Status.ACTIVE: frozenset({Status.STOPPING, Status.STOPPED, Status.FAILED}),
        Status.STOPPING: frozenset({Status.STOPPED, Status.EXPORTED, Status.FAILED}),
        Status.STOPPED: frozenset({Status.EXPORTED, Status.FAILED}),
        Status.EXPORTED: frozenset(),
        Status.FAILED: frozenset(),
    }
    LIVE_STATUSES = frozenset({Status.STARTING, Status.ACTIVE, Status.STOPPING})
    ENDED_STATUSES = frozenset({Status.STOPPED, Status.EXPORTED, Status.FAILED})

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="capture_sessions"
    )
    title = models.CharField(max_length=200)
    series = models.CharField(
        max_length=200,
        blank=True,
        help_text="Meetings of one series share their action items (empty: the same title).",
    )
    videodb_id = models.CharField(
        "VideoDB id",
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="The cap-… id VideoDB gave the session; empty until VideoDB has created it.",
    )
    end_user_id = models.CharField(max_length=128, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    error = models.JSONField(
        null=True,
        blank=True,
        help_text="What failed, as VideoDB or Copilot reported it: {code, message, …}.",
    )
    ai_error = models.TextField(
        blank=True, help_text="The last AI operation that could not be started, and why."
    )
    export_requested_at = models.DateTimeField(null=True, blank=True)
    exported_video_id = models.CharField(max_length=64, blank=True)
    stream_url = models.URLField(max_length=1000, blank=True)
    player_url = models.URLField(max_length=1000, blank=True)
    audio_prompt = models.TextField(blank=True, default="Extract key decisions and action items")
    visual_prompt = models.TextField(blank=True, default="Describe what is on screen")
    alert_rules = models.ManyToManyField("AlertRule", blank=True, related_name="capture_sessions")
    webhook_secret = models.CharField(
        max_length=64, unique=True, default=new_webhook_secret, editable=False
    )
    # Live updates carry a per-session sequence number so a browser that reconnects can ask
    # for exactly what it missed; this is the last number handed out.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    # The live brief's bookkeeping (intelligence): one generation in flight per session.
    brief_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    brief_paused = models.TextField(
        blank=True, help_text="Why the live brief is not being refreshed, when it is not."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The dashboard and history: "my sessions, newest first", optionally by status.
            models.Index(fields=["owner", "-created_at"], name="session_owner_recent_idx"),
            models.Index(fields=["owner", "status"], name="session_owner_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "created",
                        "starting",
                        "active",
                        "stopping",
                        "stopped",
                        "exported",
                        "failed",
                    ]
                ),
                name="session_status_known",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True)
                | Q(started_at__isnull=True)
                | Q(ended_at__gte=F("started_at")),
                name="session_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.videodb_id or 'not yet created'})"

    @classmethod
    def can_transition(cls, current: str, new: str) -> bool:
        return new in cls.TRANSITIONS.get(current, frozenset())

    @classmethod
    def predecessors(cls, new: str) -> list[str]:
        """The statuses from which ``new`` may be entered."""
        return [old for old, nexts in cls.TRANSITIONS.items() if new in nexts]

    def advance(self, new: str, **fields: object) -> bool:
        """Move to ``new`` in the database if, and only if, the stored status allows it.

        The UPDATE is filtered on the allowed predecessors, so two workers applying the same
        webhook race safely: exactly one of them changes the row and gets ``True``.
        """
        values = {"status": new, "updated_at": timezone.now(), **fields}
        changed = (
            type(self)
            .objects.filter(pk=self.pk, status__in=self.predecessors(new))
            .update(**values)
        )
        if changed:
            for name, value in values.items():
                setattr(self, name, value)
        else:
            self.refresh_from_db(fields=["status"])
        return bool(changed)

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @property
    def has_ended(self) -> bool:
        return self.status in self.ENDED_STATUSES

    @property
    def phase(self) -> str:
        """What the live page is showing: ``waiting`` for the desktop client, ``live`` from
        starting to stopping, ``ended``. The page switches on it in place (live.js)."""
        if self.has_ended:
            return "ended"
        return "waiting" if self.status == self.Status.CREATED else "live"


class RTStream(models.Model):
    """One real-time media stream: VideoDB makes one per captured channel."""

    class Kind(models.TextChoices):
        MIC = "mic", "Microphone"
        SYSTEM_AUDIO = "system_audio", "System audio"
        SCREEN = "screen", "Screen"
        OTHER = "other", "Other"

    videodb_id = models.CharField("VideoDB id", max_length=64, unique=True)
    session = models.ForeignKey(CaptureSession, on_delete=models.CASCADE, related_name="streams")
    name = models.CharField(max_length=128, help_text="mic:default, system_audio:default, …")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OTHER)
    media_types = models.JSONField(default=list, blank=True, help_text='["audio"], ["video"]')
    speaker_label = models.CharField(
        max_length=100,
        blank=True,
        help_text="Who this channel is in the transcript; renaming it relabels every line.",
    )
    last_event_ms = models.BigIntegerField(
        null=True, blank=True, help_text="VideoDB time of the newest event on this stream."
    )
    last_event_received_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session", "name"]
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="stream_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.videodb_id})"

    @classmethod
    def kind_for(cls, name: str, channel_id: str = "") -> str:
        """The channel kind from VideoDB's channel category or, failing that, its name."""
        category = (channel_id or name.split(":", 1)[0]).lower()
        if category in {"mic", "microphone"}:
            return cls.Kind.MIC
        if category == "system_audio":
            return cls.Kind.SYSTEM_AUDIO
        if category in {"screen", "display"}:
            return cls.Kind.SCREEN
        return cls.Kind.OTHER

    @property
    def has_audio(self) -> bool:
        return "audio" in self.media_types

    @property
    def has_video(self) -> bool:
        return "video" in self.media_types

    @property
    def speaker(self) -> str:
        """Who speaks on this channel, as every page shows it. A microphone stream is named
        after the session's owner when it is stored (sessions_app/live/speakers.py), never
        "Me": the same line is read by participants on the share page."""
        if self.speaker_label:
            return self.speaker_label
        return {
            self.Kind.MIC: "Host",
            self.Kind.SYSTEM_AUDIO: "Others",
            self.Kind.SCREEN: "Screen",
        }.get(self.kind, self.name)


class StreamOperation(models.Model):
    """An AI operation on a stream, claimed before it is started so it is started once.

    The unique (stream, key) row is the claim: whoever inserts it calls VideoDB, and marks it
    started with VideoDB's id when VideoDB accepted. A duplicate or retried task finds the row
    and does nothing. A failed start releases the claim (deletes the row) so a retry can take
    it; a claim left by a worker that died mid-call goes stale and the reconciler retakes it.
    """

    class Kind(models.TextChoices):
        TRANSCRIPT = "transcript", "Transcript"
        AUDIO_INDEX = "audio_index", "Audio index"
        VISUAL_INDEX = "visual_index", "Visual index"
        ALERT = "alert", "Alert"

    class State(models.TextChoices):
        CLAIMED = "claimed", "Being started"
        STARTED = "started", "Started"

    stream = models.ForeignKey(RTStream, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # "transcript", "audio_index", "visual_index" or "alert:<rule id>": one of each per stream.
    key = models.CharField(max_length=64)
    state = models.CharField(max_length=8, choices=State.choices, default=State.CLAIMED)
    alert_rule = models.ForeignKey(
        "AlertRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    remote_id = models.CharField(
        max_length=64, blank=True, help_text="VideoDB's id for it: scene index id or alert id."
    )
    index_id = models.CharField(
        max_length=64, blank=True, help_text="For alerts: the scene index they watch."
    )
    ws_connection_id = models.CharField(max_length=128, blank=True)
    claimed_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["stream", "key"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "key"], name="operation_once_per_stream"),
            models.CheckConstraint(
                condition=Q(state="claimed") | Q(started_at__isnull=False),
                name="operation_started_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} on {self.stream.name} ({self.state})"


class SessionEvent(models.Model):
    """What the event tables (transcript segments, insights, alerts) share: the session and
    stream an event was reported on, its span in VideoDB time, and the session sequence
    number a reconnecting browser replays by. Each table names its reverse accessors
    (``session.segments``, ``stream.alerts``, …) with ``Meta.default_related_name``."""

    session = models.ForeignKey(CaptureSession, on_delete=models.CASCADE)
    stream = models.ForeignKey(RTStream, on_delete=models.CASCADE)
    start_ms = models.BigIntegerField()
    end_ms = models.BigIntegerField()
    seq = models.PositiveBigIntegerField(
        default=0, help_text="Session sequence of the last change."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["start_ms", "id"]


class TranscriptSegment(SessionEvent):
    """Speech on one stream. VideoDB sends interim text that grows and then one final text,
    all with the same start time: (stream, start_ms) is the segment's identity, so interims
    update one row in place, the final replaces them, and a repeat stores nothing new."""

    text = models.TextField()
    is_final = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(SessionEvent.Meta):
        default_related_name = "segments"
        constraints = [
            models.UniqueConstraint(fields=["stream", "start_ms"], name="segment_once_per_start"),
            models.CheckConstraint(
                condition=Q(end_ms__gte=F("start_ms")), name="segment_end_after_start"
            ),
        ]
        indexes = [
            # The live page and history: a session's transcript in time order.
            models.Index(fields=["session", "start_ms"], name="segment_session_time_idx"),
            # Replay after a reconnect: "everything in this session after sequence N".
            models.Index(fields=["session", "seq"], name="segment_session_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"{'final' if self.is_final else 'interim'} @{self.start_ms}: {self.text[:60]}"


class Insight(SessionEvent):
    """A scene (visual) or audio index result: what was on screen, what was decided."""

    class Kind(models.TextChoices):
        VISUAL = "visual", "On screen"
        AUDIO = "audio", "Audio insight"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    index_id = models.CharField(max_length=64, blank=True)
    text = models.TextField()

    class Meta(SessionEvent.Meta):
        default_related_name = "insights"
        constraints = [
            # One index of each kind runs per stream (see StreamOperation), so its window
            # start identifies a result whether it came over the socket or from a backfill.
            models.UniqueConstraint(
                fields=["stream", "kind", "start_ms"], name="insight_once_per_window"
            ),
            models.CheckConstraint(
                condition=Q(end_ms__gte=F("start_ms")), name="insight_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["visual", "audio"]), name="insight_kind_known"
            ),
        ]
        indexes = [
            models.Index(fields=["session", "kind", "start_ms"], name="insight_session_time_idx"),
            models.Index(fields=["session", "seq"], name="insight_session_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @{self.start_ms}: {self.text[:60]}"


class AlertRule(models.Model):
    """A user's plain-language detection rule, turned into a VideoDB event and alerts."""

    class Target(models.TextChoices):
        AUDIO = "audio", "Speech"
        VISUAL = "visual", "Screen"
        BOTH = "both", "Speech and screen"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_rules"
    )
    name = models.CharField(
        max_length=80, blank=True, help_text="Shown when it fires: Pricing discussed"
    )
    label = models.SlugField(
        max_length=64, help_text="VideoDB's short id for the rule: pricing_discussed"
    )
    prompt = models.TextField(help_text="What to watch for, in plain language.")
    target = models.CharField(max_length=8, choices=Target.choices, default=Target.BOTH)
    is_enabled = models.BooleanField(default=True)
    videodb_event_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="alert_rule_label_per_owner"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        """What people read: the rule's name, or its label made readable."""
        return self.name or readable_label(self.label)

    @property
    def watches_audio(self) -> bool:
        return self.target in {self.Target.AUDIO, self.Target.BOTH}

    @property
    def watches_visual(self) -> bool:
        return self.target in {self.Target.VISUAL, self.Target.BOTH}


class ConfirmedAlerts(models.Manager["Alert"]):
    """The alerts Copilot shows as fact. Being the default manager, it is also what
    ``session.alerts`` and ``stream.alerts`` read, so no page, export, search or brief can
    show an alert that only an (unverifiable) callback reported."""

    def get_queryset(self) -> models.QuerySet[Alert]:
        return super().get_queryset().filter(confirmed=True)


class Alert(SessionEvent):
    """An alert that fired. It may arrive twice (callback and WebSocket): (stream, label,
    start_ms) is its identity, so the second arrival stores nothing.

    Anyone holding a callback URL can post to it, so an alert that only a callback reported
    is kept unconfirmed (``confirmed=False``, hidden) until the socket brings the same alert
    or VideoDB's own records show it (``live.ingest``)."""

    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    label = models.CharField(max_length=128)
    triggered = models.BooleanField(default=True)
    confidence = models.FloatField(null=True, blank=True)
    text = models.TextField(blank=True, help_text="VideoDB's explanation, when it sends one.")
    confirmed = models.BooleanField(
        default=True,
        help_text="Reported by the socket or seen in VideoDB's records, not only by a callback.",
    )

    objects = ConfirmedAlerts()
    all_objects: models.Manager[Alert] = models.Manager()

    class Meta(SessionEvent.Meta):
        default_related_name = "alerts"
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "label", "start_ms"], name="alert_once_per_moment"
            ),
            models.CheckConstraint(
                condition=Q(end_ms__gte=F("start_ms")), name="alert_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | (Q(confidence__gte=0) & Q(confidence__lte=1)),
                name="alert_confidence_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["session", "start_ms"], name="alert_session_time_idx"),
            models.Index(fields=["session", "seq"], name="alert_session_seq_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label} @{self.start_ms}"

    @property
    def title(self) -> str:
        """The rule's name when the alert came from one of ours, else VideoDB's label made
        readable (an alert can outlive its rule, or come from an event made elsewhere)."""
        return self.rule.title if self.rule_id and self.rule else readable_label(self.label)


class WebhookDelivery(models.Model):
    """One accepted webhook delivery, stored before it is acted on, so none is ever lost."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    dedupe_key = models.CharField(max_length=200, unique=True)
    session = models.ForeignKey(
        CaptureSession, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=64)
    status = models.CharField(max_length=16, blank=True)
    event_timestamp = models.DateTimeField(null=True, blank=True)
    raw_body = models.TextField()
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["session", "-received_at"], name="delivery_session_idx"),
            # The reconciler's query: "accepted but never processed", oldest first.
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="delivery_unprocessed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} for {self.session_id} ({self.outcome})"


class ShareLinkQuerySet(models.QuerySet):
    def valid(self, now: datetime | None = None) -> ShareLinkQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ShareLink(models.Model):
    """A revocable, optionally expiring link that lets anyone holding it view a session."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"

    session = models.ForeignKey(
        CaptureSession, on_delete=models.CASCADE, related_name="share_links"
    )
    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    can_ask = models.BooleanField(
        default=False, help_text="Holders of the link may ask the meeting questions."
    )

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=["viewer"]), name="share_role_known"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} link to {self.session_id}"

    def is_valid(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class RelayConnection(models.Model):
    """Where a relay process publishes its VideoDB WebSocket connection id and heartbeat.

    AI operations deliver their events to the connection id they were started with, so the
    tasks that start them read the freshest one here (and start without one when no relay
    is up: the relay backfills through the API once it connects).
    """

    shard = models.CharField(max_length=64, unique=True, default="default")
    connection_id = models.CharField(max_length=128, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"relay {self.shard}: {self.connection_id or 'disconnected'}"


class WebhookRejection(models.Model):
    """Counts refused webhook calls by reason; nothing of a refused body is kept."""

    reason = models.CharField(max_length=32, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.reason}: {self.count}"


class SessionViewer(models.Model):
    """A signed-in user who opened a session's share link: the session is then "shared with"
    them and appears in their history and search, for as long as the link stays valid.
    Revoking or expiring the link ends it; nothing here outlives the link's validity."""

    session = models.ForeignKey(CaptureSession, on_delete=models.CASCADE, related_name="viewers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shared_sessions"
    )
    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="viewers")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(fields=["link", "user"], name="viewer_once_per_link"),
        ]
        indexes = [models.Index(fields=["user", "session"], name="viewer_user_session_idx")]

    def __str__(self) -> str:
        return f"{self.user} views {self.session_id}"


class SearchEntry(models.Model):
    """One searchable thing: a final transcript line, an insight, an alert, or a current
    decision or action item of a brief (found at its first cited moment).

    ``terms`` is the text folded, split and stemmed by sessions_app/history/search_text.py, so both
    databases index the very same words: PostgreSQL keeps a generated ``tsv`` column over it
    with a GIN index, SQLite an FTS5 table kept in step by triggers (migration 0002). Neither
    structure is a Django field: they follow this row whatever writes it.
    """

    class Kind(models.TextChoices):
        SPEECH = "speech", "Said"
        VISUAL = "visual", "On screen"
        AUDIO = "audio", "Insight"
        ALERT = "alert", "Alert"
        DECISION = "decision", "Decision"
        ACTION = "action", "Action item"

    session = models.ForeignKey(
        CaptureSession, on_delete=models.CASCADE, related_name="search_entries"
    )
    stream = models.ForeignKey(RTStream, on_delete=models.CASCADE, related_name="search_entries")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # What the entry was made from: exactly one of these, and deleting it deletes the entry.
    segment = models.OneToOneField(
        TranscriptSegment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    insight = models.OneToOneField(
        Insight, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    alert = models.OneToOneField(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    brief_item = models.OneToOneField(
        "BriefItem", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=16, choices=RTStream.Kind.choices)
    start_ms = models.BigIntegerField()
    end_ms = models.BigIntegerField()
    day = models.DateField(help_text="The moment's date in the site's time zone (for facets).")
    text = models.TextField()
    terms = models.TextField()

    class Meta:
        ordering = ["-start_ms", "-id"]
        verbose_name_plural = "search entries"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        kind="speech",
                        segment__isnull=False,
                        insight=None,
                        alert=None,
                        brief_item=None,
                    )
                    | Q(
                        kind__in=["visual", "audio"],
                        segment=None,
                        insight__isnull=False,
                        alert=None,
                        brief_item=None,
                    )
                    | Q(
                        kind="alert",
                        segment=None,
                        insight=None,
                        alert__isnull=False,
                        brief_item=None,
                    )
                    | Q(
                        kind__in=["decision", "action"],
                        segment=None,
                        insight=None,
                        alert=None,
                        brief_item__isnull=False,
                    )
                ),
                name="search_entry_one_source",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["speech", "visual", "audio", "alert", "decision", "action"]),
                name="search_entry_kind_known",
            ),
        ]
        indexes = [
            # Scoped searches, newest moment first, and the per-session listing. With the id,
            # the index gives search's very order (-start_ms, -id), so reading a session's
            # matches newest first stops after a page without sorting (search.py).
            models.Index(fields=["session", "-start_ms", "-id"], name="search_session_newest_idx"),
            # A session's insight entries, a few beside its lines: search groups VideoDB's
            # repeated insights without reading every line that matches a common word.
            models.Index(
                fields=["session"],
                condition=Q(kind__in=["visual", "audio"]),
                name="search_insight_session_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @{self.start_ms}: {self.text[:60]}"


# --- meeting intelligence ------------------------------------------------------------------


class Brief(models.Model):
    """One generation of a session's live brief: what it covered and how it was made. The
    items themselves live on (``BriefItem``) from one generation to the next."""

    session = models.ForeignKey(CaptureSession, on_delete=models.CASCADE, related_name="briefs")
    number = models.PositiveIntegerField(help_text="1 for the first brief of the session, …")
    is_final = models.BooleanField(default=False, help_text="Made after capture stopped.")
    model_name = models.CharField(max_length=64)
    prompt_version = models.CharField(max_length=32)
    # The part of the stored record the prompt covered (VideoDB epoch ms, session seq).
    covered_from_ms = models.BigIntegerField(null=True, blank=True)
    covered_through_ms = models.BigIntegerField(null=True, blank=True)
    covered_through_seq = models.PositiveBigIntegerField(default=0)
    source_count = models.PositiveIntegerField(default=0)
    prompt_bytes = models.PositiveIntegerField(default=0)
    dropped_citations = models.PositiveIntegerField(
        default=0, help_text="Cited numbers the prompt never sent (dropped)."
    )
    dropped_items = models.PositiveIntegerField(
        default=0, help_text="Items left without evidence (dropped)."
    )
    made_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["session", "number"], name="brief_number_unique"),
        ]

    def __str__(self) -> str:
        return f"brief {self.number} of session {self.session_id}"


class BriefItem(models.Model):
    """One point of a session's brief. A refresh that keeps the point (same ``key``) updates
    this row, so the page replaces it in place; an action item may follow an open one from an
    earlier meeting of the same series (``follows``) instead of being a new one."""

    class Kind(models.TextChoices):
        SUMMARY = "summary", "Summary"
        DECISION = "decision", "Decision"
        ACTION = "action", "Action item"
        QUESTION = "question", "Open question"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    session = models.ForeignKey(
        CaptureSession, on_delete=models.CASCADE, related_name="brief_items"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=64, help_text="What makes two refreshes' items the same.")
    text = models.TextField()
    owner = models.CharField(max_length=100, blank=True)
    due = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    status_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who marked it done or open by hand (a refresh then leaves the status alone).",
    )
    evidence = models.JSONField(
        default=list, help_text='[{"kind": "transcript"|"visual"|"audio"|"alert", "id": 12}]'
    )
    start_ms = models.BigIntegerField(
        null=True, blank=True, help_text="The earliest moment its evidence points at."
    )
    position = models.PositiveIntegerField(default=0)
    is_current = models.BooleanField(default=True, help_text="In the session's latest brief.")
    first_brief = models.ForeignKey(
        Brief, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_brief = models.ForeignKey(
        Brief, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    follows = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="followed_by",
        help_text="The open action item of an earlier meeting in the series this one repeats.",
    )
    seq = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Session sequence number of the last change."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["session", "kind", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "kind", "key"], name="brief_item_identity_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["summary", "decision", "action", "question"]),
                name="brief_item_kind_known",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "done"]), name="brief_item_status_known"
            ),
        ]
        indexes = [
            # The action-items page: open actions of many sessions.
            models.Index(fields=["kind", "status", "session"], name="brief_item_open_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:60]}"


class Question(models.Model):
    """A question asked of a meeting, and the answer, with the moments it cites."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Being answered"
        ANSWERED = "answered", "Answered"
        NOT_DISCUSSED = "not_discussed", "Not discussed"
        FAILED = "failed", "Could not be answered"

    MAX_LENGTH = 500

    session = models.ForeignKey(CaptureSession, on_delete=models.CASCADE, related_name="questions")
    asked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="questions",
    )
    share_link = models.ForeignKey(
        ShareLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="questions"
    )
    question = models.TextField()
    answer = models.TextField(blank=True)
    evidence = models.JSONField(default=list)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    error = models.TextField(blank=True)
    model_name = models.CharField(max_length=64, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    seq = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Session sequence number of the last change."
    )
    asked_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "-asked_at"]
        indexes = [
            # The rate limit: "questions this user asked in the last minute".
            models.Index(fields=["asked_by", "-asked_at"], name="question_asker_recent_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=["pending", "answered", "not_discussed", "failed"]),
                name="question_outcome_known",
            ),
        ]

    def __str__(self) -> str:
        return self.question[:60]
