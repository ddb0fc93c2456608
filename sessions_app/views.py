"""Pages. Views parse, authorize and render; the rules live in services and models."""

from __future__ import annotations

import time
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions_app import gateway
from sessions_app.capture import alert_rules, handoff, simulator
from sessions_app.forms import AlertRuleForm, NewSessionForm, ShareLinkForm, SpeakerForm
from sessions_app.history import queries
from sessions_app.intelligence_views import ask_context
from sessions_app.live import broadcast, speakers
from sessions_app.models import AlertRule, CaptureSession, RTStream, ShareLink
from sessions_app.viewers import access, sharing


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def new_session(request: HttpRequest) -> HttpResponse:
    form = NewSessionForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            session = handoff.create_session(request.user, **form.cleaned_data)
        except gateway.GatewayError as exc:
            form.add_error(None, f"{exc.message} Nothing was created; try again.")
        else:
            messages.success(request, "Session created. Start the desktop client to begin.")
            return redirect("session-detail", pk=session.pk)
    return render(request, "sessions_app/new_session.html", {"form": form})


def _handoff_context(request: HttpRequest, session: CaptureSession) -> dict:
    context: dict = {"session": session, "token": None, "token_error": ""}
    if session.videodb_id and not session.has_ended:
        try:
            context["token"] = handoff.mint_client_token(session)
        except gateway.GatewayError as exc:
            context["token_error"] = exc.message
    return context


def _live_context(session: CaptureSession, *, share_token: str = "") -> dict:
    """The live board: current items from the database and where its socket connects (none
    for a session that has ended: the page is complete as rendered)."""
    live_url = ""
    if not session.has_ended:
        live_url = f"/ws/sessions/{session.pk}/"
        if share_token:
            live_url += f"?share={quote(share_token, safe='')}"
    # A refused handshake looks like a network error to a browser; when reconnecting keeps
    # failing, the page asks this cheap URL whether it may still watch (404: no longer).
    if share_token:
        probe_url = reverse("share-page", args=[share_token])
    else:
        probe_url = reverse("session-status", args=[session.pk])
    return {
        **broadcast.snapshot(session),
        "live_url": live_url,
        "probe_url": probe_url,
        "server_ms": int(time.time() * 1000),
        "live_settings": {
            "silence": settings.LIVE_SILENCE_WARNING_SECONDS,
            "ping": settings.LIVE_PING_SECONDS,
            "stale": settings.LIVE_STALE_SECONDS,
        },
    }


def _sharing_context(request: HttpRequest, session: CaptureSession) -> dict:
    links = list(session.share_links.all())
    for link in links:
        link.url = request.build_absolute_uri(reverse("share-page", args=[link.token]))
        link.valid = link.is_valid()
    return {"session": session, "share_links": links, "share_form": ShareLinkForm()}


@require_GET
@login_required
@never_cache
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    context = _handoff_context(request, session)
    context.update(_live_context(session))
    context.update(_sharing_context(request, session))
    context.update(ask_context(request, session, next_url=request.get_full_path()))
    can_simulate = settings.VIDEODB_USES_EMULATOR and session.status == "created"
    context.update(
        streams=session.streams.prefetch_related("operations"),
        can_simulate=can_simulate,
        simulate_scripts=simulator.scripts() if can_simulate else (),
    )
    return render(request, "sessions_app/session_detail.html", context)


@require_GET
@never_cache
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    """The read-only live view for a share link's holder: no account, no hand-off, no token,
    no renaming. Revoked, expired and unknown links all answer 404."""
    link = sharing.resolve(token)
    if link is None:
        raise Http404("No such link.")
    # From now on this browser (or signed-in user) may also open the session's history,
    # search it and download it, for as long as the link stays valid.
    access.remember(request, link)
    context = {"session": link.session, "link": link}
    context.update(_live_context(link.session, share_token=link.token))
    context.update(ask_context(request, link.session, next_url=request.get_full_path()))
    return render(request, "sessions_app/share.html", context)


@require_POST
@login_required
@never_cache
def rename_speaker(request: HttpRequest, pk: int, stream_pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    stream = get_object_or_404(RTStream, pk=stream_pk, session=session)
    form = SpeakerForm(request.POST)
    saved = form.is_valid()
    if saved:
        speakers.rename(stream, form.cleaned_data["speaker_label"])
    if request.htmx:
        context = {"session": session, "stream": stream, "form": form, "saved": saved}
        return render(request, "sessions_app/session_detail.html#speaker-form", context)
    if not saved:
        messages.error(request, "A speaker name is at most 100 characters.")
    return redirect("session-detail", pk=session.pk)


@require_POST
@login_required
@never_cache
def share_link_create(request: HttpRequest, pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    form = ShareLinkForm(request.POST)
    if form.is_valid():
        sharing.create_link(
            session,
            request.user,
            expires_at=form.expires_at(),
            can_ask=form.cleaned_data["can_ask"],
        )
    else:
        messages.error(request, "Choose when the link expires.")
    return _sharing_response(request, session)


def _sharing_response(request: HttpRequest, session: CaptureSession) -> HttpResponse:
    """The participants card again (HTMX), or the page (a plain form post)."""
    if request.htmx:
        return render(
            request, "sessions_app/session_detail.html#sharing", _sharing_context(request, session)
        )
    return redirect("session-detail", pk=session.pk)


@require_POST
@login_required
@never_cache
def share_link_revoke(request: HttpRequest, pk: int, link_pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    link = get_object_or_404(ShareLink, pk=link_pk, session=session)
    sharing.revoke(link)
    return _sharing_response(request, session)


@require_GET
@login_required
@never_cache
def session_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner's status card, fetched when the live banner announces a change (and, from
    live.js, as a cheap "may I still watch?" probe)."""
    session = access.owned_session(request, pk)
    return render(
        request,
        "sessions_app/session_detail.html#status",
        {"session": session, "streams": session.streams.prefetch_related("operations")},
    )


@require_GET
@login_required
@never_cache
def session_speakers(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner's "Name speakers" disclosure, fetched again when a new channel reaches the
    page (closed: it must not jump open under the reader)."""
    session = access.owned_session(request, pk)
    context = {"session": session, "streams": session.streams.all(), "open": False}
    return render(request, "sessions_app/session_detail.html#speakers", context)


@require_POST
@login_required
@never_cache
def regenerate_token(request: HttpRequest, pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    context = {**_handoff_context(request, session), "open": True}
    return render(request, "sessions_app/session_detail.html#handoff", context)


@require_POST
@login_required
@never_cache
def client_token_json(request: HttpRequest, pk: int) -> JsonResponse:
    """For a desktop app signed in as the user: the session id and a fresh client token.
    The API key never appears here; the token can only stream this user's capture."""
    session = access.owned_session(request, pk)
    if not session.videodb_id or session.has_ended:
        return JsonResponse(
            {"error": f"the session is {session.status}; it takes no more capture"}, status=409
        )
    try:
        token = handoff.mint_client_token(session)
    except gateway.GatewayError as exc:
        return JsonResponse({"error": exc.message}, status=503 if exc.retryable else 502)
    return JsonResponse(
        {
            "capture_session_id": token.capture_session_id,
            "client_token": token.token,
            "expires_at": token.expires_at.isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )


@require_POST
@login_required
@never_cache
def simulate(request: HttpRequest, pk: int) -> HttpResponse:
    session = access.owned_session(request, pk)
    if not settings.VIDEODB_USES_EMULATOR:
        messages.error(request, "Simulated meetings only exist on the local emulator.")
    elif session.status != "created":
        messages.error(request, f"The session is already {session.status}.")
    else:
        try:
            script = simulator.play(session, script=request.POST.get("script") or None)
        except simulator.SimulatorError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, f"Playing the simulated meeting “{simulator.title_of(script)}”."
            )
    return redirect("session-detail", pk=session.pk)


# --- alert rules ----------------------------------------------------------------------------


@require_GET
@login_required
@never_cache
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = AlertRule.objects.filter(owner=request.user).annotate(fired=queries.triggered_alerts())
    return render(request, "sessions_app/rules.html", {"rules": rules})


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user) if pk else None
    form = AlertRuleForm(request.POST or None, instance=rule, owner=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        saved = alert_rules.save(
            request.user,
            rule=rule,
            name=data["name"],
            label=data["label"],
            prompt=data["prompt"],
            target=data["target"],
            is_enabled=data["is_enabled"],
        )
        messages.success(request, f"Saved the rule “{saved.title}”.")
        return redirect("rule-list")
    return render(request, "sessions_app/rule_form.html", {"form": form, "rule": rule})


@require_POST
@login_required
@never_cache
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user)
    alert_rules.set_enabled(rule, not rule.is_enabled)
    if request.htmx:
        return render(request, "sessions_app/rules.html#rule-row", {"rule": rule})
    return redirect("rule-list")


@require_POST
@login_required
@never_cache
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user)
    title = rule.title
    alert_rules.delete(rule)
    if request.htmx:
        return HttpResponse("")
    messages.success(request, f"Deleted the rule “{title}”.")
    return redirect("rule-list")
