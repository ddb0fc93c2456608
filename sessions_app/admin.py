"""The operator's view of everything Copilot stores.

Data that came from VideoDB (events, raw webhook bodies, and what its text generation made:
briefs, their items, answers) is read-only here: an operator may look and act through
actions, but never rewrite what VideoDB said. The one exception is an action item's status,
which people set by hand on the action-items page too.
"""

from __future__ import annotations

import json
from functools import partial

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from sessions_app import gateway, tasks
from sessions_app.capture import alert_rules, lifecycle
from sessions_app.history import queries
from sessions_app.intelligence import actions
from sessions_app.models import (
    Alert,
    AlertRule,
    Brief,
    BriefItem,
    CaptureSession,
    Insight,
    Question,
    RelayConnection,
    RTStream,
    SessionViewer,
    ShareLink,
    StreamOperation,
    TranscriptSegment,
    User,
    WebhookDelivery,
    WebhookRejection,
)
from sessions_app.viewers import sharing

admin.site.site_header = "Copilot administration"
admin.site.site_title = "Copilot admin"
admin.site.index_title = "Sessions, streams and what VideoDB sent"


def _pretty_json(value: object) -> str:
    # format_html escapes the JSON text, so VideoDB's strings stay inert in the page.
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class VideoDBDataAdmin(admin.ModelAdmin):
    """Rows that record what VideoDB sent: viewable and deletable, never edited or added.
    The event tables list their ``fields`` in reading order: by default the fields they
    share (models.SessionEvent) would come first."""

    show_full_result_count = False  # event tables grow to millions of rows
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Copilot", {"fields": ("display_name",)}),
    )
    list_display = ("username", "display_name", "email", "is_staff", "is_active", "date_joined")
    # Copilot shows people by their display name, so that is what an operator searches for.
    search_fields = ("username", "display_name", "first_name", "last_name", "email")


class RTStreamInline(ReadOnlyInline):
    model = RTStream
    fields = ("name", "kind", "videodb_id", "media_types", "speaker_label", "last_event_ms")
    readonly_fields = fields


class AlertInline(ReadOnlyInline):
    model = Alert
    fields = ("label", "stream", "triggered", "confidence", "start_ms", "end_ms", "rule")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        # Each row shows its stream and rule: fetch them with the rows, not one query apiece.
        return super().get_queryset(request).select_related("stream", "rule")


class ShareLinkInline(ReadOnlyInline):
    model = ShareLink
    fields = ("role", "created_by", "created_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShareLink]:
        return super().get_queryset(request).select_related("created_by")


@admin.register(CaptureSession)
class CaptureSessionAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "owner",
        "status",
        "videodb_id",
        "created_at",
        "stream_count",
        "alert_count",
    )
    list_filter = ("status", ("owner", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = (
        "title",
        "videodb_id",
        "end_user_id",
        "owner__username",
        "streams__videodb_id",
    )
    list_select_related = ("owner",)
    # Explicit, because the counts' GROUP BY drops Meta.ordering: without it the share-link
    # form's session autocomplete pages through an unordered queryset.
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    inlines = (RTStreamInline, AlertInline, ShareLinkInline)
    autocomplete_fields = ("owner",)
    filter_horizontal = ("alert_rules",)
    readonly_fields = (
        "uuid",
        "videodb_id",
        "status",
        "pretty_metadata",
        "pretty_error",
        "exported_video_id",
        "stream_url",
        "player_url",
        "last_seq",
        "created_at",
        "updated_at",
        "started_at",
        "ended_at",
    )
    fieldsets = (
        (None, {"fields": ("title", "owner", "status", "uuid", "videodb_id", "end_user_id")}),
        ("AI", {"fields": ("audio_prompt", "visual_prompt", "alert_rules")}),
        (
            "Outcome",
            {"fields": ("pretty_error", "exported_video_id", "stream_url", "player_url")},
        ),
        (
            "Bookkeeping",
            {
                "classes": ("collapse",),
                "fields": (
                    "pretty_metadata",
                    "last_seq",
                    "created_at",
                    "updated_at",
                    "started_at",
                    "ended_at",
                ),
            },
        ),
    )

    actions = ("stop_capture", "rebuild_search")

    @admin.action(description="Stop the selected captures in VideoDB")
    def stop_capture(self, request: HttpRequest, queryset: QuerySet[CaptureSession]) -> None:
        stopped, refused = 0, []
        for session in queryset:
            try:
                if lifecycle.stop_capture(session):
                    stopped += 1
            except gateway.GatewayError as exc:
                refused.append(f"{session.title}: {exc.message}")
        self.message_user(request, f"Asked VideoDB to stop {stopped} capture(s).", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.ERROR)

    @admin.action(description="Rebuild the search entries of the selected sessions")
    def rebuild_search(self, request: HttpRequest, queryset: QuerySet[CaptureSession]) -> None:
        # A task per session on the indexing queue: a long meeting has thousands of entries,
        # more than a page's request should hold a worker thread and a connection for.
        session_ids = list(queryset.values_list("pk", flat=True))
        for session_id in session_ids:
            transaction.on_commit(partial(tasks.rebuild_search.delay, session_id), robust=True)
        self.message_user(
            request,
            f"Rebuilding the search entries of {len(session_ids)} session(s) in the background.",
            messages.SUCCESS,
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[CaptureSession]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _stream_count=Count("streams", distinct=True),
                # The alerts that fired, as the session list counts them.
                _alert_count=queries.triggered_alerts(),
            )
        )

    @admin.display(description="Streams", ordering="_stream_count")
    def stream_count(self, obj: CaptureSession) -> int:
        return obj._stream_count

    @admin.display(description="Alerts", ordering="_alert_count")
    def alert_count(self, obj: CaptureSession) -> int:
        return obj._alert_count

    @admin.display(description="Metadata")
    def pretty_metadata(self, obj: CaptureSession) -> str:
        return _pretty_json(obj.metadata)

    @admin.display(description="Error")
    def pretty_error(self, obj: CaptureSession) -> str:
        return _pretty_json(obj.error) if obj.error else "—"


class StreamOperationInline(ReadOnlyInline):
    model = StreamOperation
    fields = ("key", "remote_id", "index_id", "ws_connection_id", "started_at")
    readonly_fields = fields


@admin.register(RTStream)
class RTStreamAdmin(VideoDBDataAdmin):
    list_display = ("name", "kind", "session", "videodb_id", "speaker_label", "last_event_ms")
    list_filter = ("kind",)
    search_fields = ("videodb_id", "name", "session__videodb_id", "session__title")
    list_select_related = ("session",)
    inlines = (StreamOperationInline,)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The speaker label is Copilot's own data, so it stays editable.
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        return (
            "videodb_id",
            "session",
            "name",
            "kind",
            "media_types",
            "last_event_ms",
            "last_event_received_at",
            "created_at",
            "updated_at",
        )


@admin.register(StreamOperation)
class StreamOperationAdmin(VideoDBDataAdmin):
    list_display = ("key", "kind", "stream", "remote_id", "started_at")
    list_filter = ("kind",)
    search_fields = ("remote_id", "stream__videodb_id", "stream__session__videodb_id")
    list_select_related = ("stream",)


@admin.register(TranscriptSegment)
class TranscriptSegmentAdmin(VideoDBDataAdmin):
    fields = ("session", "stream", "text", "is_final", "start_ms", "end_ms", "seq", "created_at")
    list_display = ("short_text", "stream", "is_final", "start_ms", "end_ms", "session")
    list_filter = ("is_final", "stream__kind")
    search_fields = ("text", "session__videodb_id", "stream__videodb_id")
    list_select_related = ("session", "stream")

    @admin.display(description="Text")
    def short_text(self, obj: TranscriptSegment) -> str:
        return obj.text[:80]


@admin.register(Insight)
class InsightAdmin(VideoDBDataAdmin):
    fields = (
        "session",
        "stream",
        "kind",
        "index_id",
        "text",
        "start_ms",
        "end_ms",
        "seq",
        "created_at",
    )
    list_display = ("short_text", "kind", "stream", "start_ms", "end_ms", "session")
    list_filter = ("kind",)
    search_fields = ("text", "index_id", "session__videodb_id")
    list_select_related = ("session", "stream")

    @admin.display(description="Text")
    def short_text(self, obj: Insight) -> str:
        return obj.text[:80]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("label", "name", "owner", "target", "is_enabled", "updated_at")
    list_filter = ("target", "is_enabled", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("label", "name", "prompt", "owner__username")
    list_select_related = ("owner",)
    autocomplete_fields = ("owner",)
    readonly_fields = ("videodb_event_id", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: AlertRule, form: object, change: bool) -> None:
        # The same rule as the rules page: a new label or prompt drops the VideoDB event.
        alert_rules.save(
            obj.owner,
            rule=obj,
            name=obj.name,
            label=obj.label,
            prompt=obj.prompt,
            target=obj.target,
            is_enabled=obj.is_enabled,
        )


@admin.register(Alert)
class AlertAdmin(VideoDBDataAdmin):
    fields = (
        "session",
        "stream",
        "rule",
        "label",
        "triggered",
        "confidence",
        "text",
        "start_ms",
        "end_ms",
        "seq",
        "created_at",
    )
    list_display = ("label", "session", "stream", "triggered", "confidence", "start_ms")
    list_filter = ("triggered", "label")
    search_fields = ("label", "text", "session__videodb_id", "session__title")
    list_select_related = ("session", "stream")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(VideoDBDataAdmin):
    list_display = ("event", "session", "outcome", "attempts", "received_at", "processed_at")
    list_filter = ("outcome", "event", "received_at")
    search_fields = ("dedupe_key", "session__videodb_id", "session__title", "event")
    list_select_related = ("session",)
    date_hierarchy = "received_at"
    readonly_fields = (
        "dedupe_key",
        "session",
        "event",
        "status",
        "event_timestamp",
        "pretty_body",
        "received_at",
        "processed_at",
        "outcome",
        "attempts",
        "error",
    )
    exclude = ("raw_body", "payload")
    actions = ("reprocess",)

    @admin.action(description="Process the selected deliveries again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        queued = 0
        with transaction.atomic():
            for delivery in queryset:
                if lifecycle.reset_delivery(delivery):
                    queued += 1
                    transaction.on_commit(
                        partial(tasks.process_delivery.delay, delivery.pk), robust=True
                    )
        skipped = queryset.count() - queued
        self.message_user(
            request,
            f"Queued {queued} delivery(ies) for processing"
            + (
                f"; {skipped} of events Copilot does not act on were left alone."
                if skipped
                else "."
            ),
            messages.SUCCESS,
        )

    @admin.display(description="Raw body")
    def pretty_body(self, obj: WebhookDelivery) -> str:
        try:
            return _pretty_json(json.loads(obj.raw_body))
        except ValueError:
            return format_html("<pre>{}</pre>", obj.raw_body)


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    list_display = ("session", "role", "created_by", "created_at", "expires_at", "is_active")
    list_filter = ("role", "revoked_at", "expires_at")
    search_fields = ("session__title", "session__videodb_id", "created_by__username")
    list_select_related = ("session", "created_by")
    readonly_fields = ("token", "created_at", "revoked_at")
    autocomplete_fields = ("session", "created_by")
    actions = ("revoke_links",)

    @admin.display(description="Valid", boolean=True)
    def is_active(self, obj: ShareLink) -> bool:
        return obj.is_valid()

    @admin.action(description="Revoke the selected links")
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        revoked = sum(1 for link in queryset if sharing.revoke(link))
        self.message_user(request, f"Revoked {revoked} link(s).", messages.SUCCESS)


@admin.register(SessionViewer)
class SessionViewerAdmin(admin.ModelAdmin):
    """Signed-in users who opened a share link; revoke the link to end their viewing."""

    list_display = ("user", "session", "link", "first_seen_at", "last_seen_at")
    list_select_related = ("user", "session", "link")
    search_fields = ("user__username", "session__title")
    readonly_fields = ("user", "session", "link", "first_seen_at", "last_seen_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RelayConnection)
class RelayConnectionAdmin(VideoDBDataAdmin):
    list_display = ("shard", "connection_id", "connected_at", "heartbeat_at")
    search_fields = ("shard", "connection_id")


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(VideoDBDataAdmin):
    """Refused webhook calls by reason: a rising count of bad secrets is worth a look."""

    list_display = ("reason", "count", "last_at")
    search_fields = ("reason",)
    ordering = ("-last_at",)


# --- meeting intelligence: what VideoDB's text generation made ----------------------------


class BriefItemInline(ReadOnlyInline):
    """The items a brief holds as its latest generation (those a later one kept or dropped
    belong to the later one)."""

    model = BriefItem
    fk_name = "last_brief"
    fields = ("kind", "text", "owner", "due", "status", "is_current", "start_ms")
    readonly_fields = fields
    ordering = ("kind", "position", "id")


@admin.register(Brief)
class BriefAdmin(VideoDBDataAdmin):
    list_display = (
        "session",
        "number",
        "is_final",
        "model_name",
        "prompt_version",
        "made_at",
        "source_count",
        "dropped",
    )
    list_filter = ("is_final", "model_name", "prompt_version")
    search_fields = ("session__title", "session__videodb_id", "model_name")
    list_select_related = ("session",)
    date_hierarchy = "made_at"
    fields = (
        "session",
        "number",
        "is_final",
        "model_name",
        "prompt_version",
        "covered_from_ms",
        "covered_through_ms",
        "covered_through_seq",
        "source_count",
        "prompt_bytes",
        "dropped_citations",
        "dropped_items",
        "made_at",
    )
    inlines = (BriefItemInline,)

    @admin.display(description="Dropped (citations / items)")
    def dropped(self, obj: Brief) -> str:
        return f"{obj.dropped_citations} / {obj.dropped_items}"


@admin.register(BriefItem)
class BriefItemAdmin(VideoDBDataAdmin):
    """A point of a brief. Everything the model wrote is read-only; an action item's status
    may be set, through the same service as the action-items page (it carries the change to
    the task's later mentions and to open live pages, and refreshes then leave it alone)."""

    list_display = (
        "short_text",
        "kind",
        "session",
        "owner",
        "due",
        "status",
        "is_current",
        "follows",
    )
    list_filter = ("kind", "status", "is_current")
    search_fields = ("text", "owner", "session__title", "session__videodb_id")
    list_select_related = ("session", "follows")
    fields = (
        "session",
        "kind",
        "key",
        "text",
        "owner",
        "due",
        "status",
        "status_set_by",
        "evidence_json",
        "start_ms",
        "position",
        "is_current",
        "first_brief",
        "last_brief",
        "follows",
        "seq",
        "created_at",
        "updated_at",
    )

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        if isinstance(obj, BriefItem) and obj.kind == BriefItem.Kind.ACTION:
            return tuple(name for name in self.fields if name != "status")
        return self.fields

    def save_model(self, request: HttpRequest, obj: BriefItem, form: object, change: bool) -> None:
        if "status" not in getattr(form, "changed_data", ()):
            return
        # set_status lets only the session's owner mark an item; an operator marks it for
        # them (status_set_by then names the owner).
        owner = obj.session.owner
        acting = request.user if request.user.pk == owner.pk else owner
        actions.set_status(obj, acting, obj.status)

    @admin.display(description="Text")
    def short_text(self, obj: BriefItem) -> str:
        return obj.text[:80]

    @admin.display(description="Evidence")
    def evidence_json(self, obj: BriefItem) -> str:
        return _pretty_json(obj.evidence)


@admin.register(Question)
class QuestionAdmin(VideoDBDataAdmin):
    list_display = ("short_question", "session", "outcome", "asker", "asked_at")
    list_filter = ("outcome", "asked_at")
    search_fields = ("question", "answer", "session__title", "asked_by__username")
    list_select_related = ("session", "asked_by", "share_link")
    date_hierarchy = "asked_at"
    fields = (
        "session",
        "asked_by",
        "share_link",
        "question",
        "answer",
        "outcome",
        "evidence_json",
        "error",
        "model_name",
        "prompt_version",
        "seq",
        "asked_at",
        "answered_at",
    )

    @admin.display(description="Question")
    def short_question(self, obj: Question) -> str:
        return obj.question[:80]

    @admin.display(description="Asked by")
    def asker(self, obj: Question) -> str:
        if obj.asked_by_id is not None:
            return str(obj.asked_by)
        if obj.share_link_id is not None:
            return f"share link #{obj.share_link_id}"
        return self.get_empty_value_display()

    @admin.display(description="Evidence")
    def evidence_json(self, obj: Question) -> str:
        return _pretty_json(obj.evidence)
