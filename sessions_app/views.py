"""Pages. Views parse, authorize and render; the rules live in services and models."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions_app import alert_rules, capture, gateway, simulator
from sessions_app.forms import AlertRuleForm, NewSessionForm
from sessions_app.models import AlertRule, CaptureSession
from sessions_app.queries import sessions_owned_by

DASHBOARD_PAGE_SIZE = 25
# htmx stops polling when an answer has this status (htmx docs, "hx-trigger" polling).
HTMX_STOP_POLLING = 286


def _owned_session(request: HttpRequest, pk: int) -> CaptureSession:
    """The session if the user owns it; a 404 otherwise, so existence never leaks."""
    return get_object_or_404(CaptureSession, pk=pk, owner=request.user)


@require_GET
@login_required
@never_cache  # one person's private pages: no shared cache, no stale page on "back"
def dashboard(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(sessions_owned_by(request.user), DASHBOARD_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "sessions_app/dashboard.html", {"page": page})


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def new_session(request: HttpRequest) -> HttpResponse:
    form = NewSessionForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            session = capture.create_session(request.user, **form.cleaned_data)
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
            context["token"] = capture.mint_client_token(session)
        except gateway.GatewayError as exc:
            context["token_error"] = exc.message
    return context


@require_GET
@login_required
@never_cache
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    session = _owned_session(request, pk)
    context = _handoff_context(request, session)
    context.update(
        streams=session.streams.prefetch_related("operations"),
        can_simulate=settings.VIDEODB_USES_EMULATOR and session.status == "created",
    )
    return render(request, "sessions_app/session_detail.html", context)


@require_GET
@login_required
@never_cache
def session_status(request: HttpRequest, pk: int) -> HttpResponse:
    session = _owned_session(request, pk)
    response = render(
        request,
        "sessions_app/session_detail.html#status",
        {"session": session, "streams": session.streams.prefetch_related("operations")},
    )
    if session.has_ended:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_POST
@login_required
@never_cache
def regenerate_token(request: HttpRequest, pk: int) -> HttpResponse:
    session = _owned_session(request, pk)
    return render(
        request, "sessions_app/session_detail.html#handoff", _handoff_context(request, session)
    )


@require_POST
@login_required
@never_cache
def client_token_json(request: HttpRequest, pk: int) -> JsonResponse:
    """For a desktop app signed in as the user: the session id and a fresh client token.
    The API key never appears here; the token can only stream this user's capture."""
    session = _owned_session(request, pk)
    if not session.videodb_id or session.has_ended:
        return JsonResponse(
            {"error": f"the session is {session.status}; it takes no more capture"}, status=409
        )
    try:
        token = capture.mint_client_token(session)
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
    session = _owned_session(request, pk)
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
            messages.success(request, f"Playing the simulated meeting “{script}”.")
    return redirect("session-detail", pk=session.pk)


# --- alert rules ----------------------------------------------------------------------------


@require_GET
@login_required
@never_cache
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = AlertRule.objects.filter(owner=request.user).annotate(
        fired=Count("alerts", filter=Q(alerts__triggered=True))
    )
    return render(request, "sessions_app/rules.html", {"rules": rules})


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, owner=request.user) if pk else None
    form = AlertRuleForm(request.POST or None, instance=rule, owner=request.user)
    if request.method == "POST" and form.is_valid():
        saved = alert_rules.save(form, owner=request.user)
        messages.success(request, f"Saved the rule “{saved.label}”.")
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
    label = rule.label
    rule.delete()
    if request.htmx:
        return HttpResponse("")
    messages.success(request, f"Deleted the rule “{label}”.")
    return redirect("rule-list")
