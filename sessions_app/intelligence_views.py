"""Meeting intelligence on the pages: asking a session a question, and catching up.

For whoever may view the session (sessions_app/viewers/access.py); asking also needs
``access.may_ask``. Views parse, authorize and render; the rules live in
sessions_app/intelligence/.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from sessions_app.intelligence import ask, catchup, citations
from sessions_app.live import broadcast
from sessions_app.models import CaptureSession, Question
from sessions_app.viewers import access

ASK_TEMPLATE = "sessions_app/ask.html"
NOT_ALLOWED = "The owner of this meeting has not allowed questions on your link."
MAX_SEQ_DIGITS = 18


def ask_context(request: HttpRequest, session: CaptureSession, *, next_url: str) -> dict:
    """What the ask card needs besides the questions: may this viewer ask, and where a
    plain (script-less) form post comes back to."""
    return {
        "session": session,
        "can_ask": access.may_ask(request, session) is not None,
        "max_length": Question.MAX_LENGTH,
        "ask_next": next_url,
    }


def _questions(session: CaptureSession) -> list[str]:
    """Every question of the session, newest first, rendered as the live page shows them."""
    questions = list(session.questions.select_related("asked_by").order_by("-asked_at", "-pk"))
    citations.attach(session, questions)
    return [broadcast.render(q, session=session, oob=False) for q in questions]


def _next_url(request: HttpRequest, session: CaptureSession) -> str:
    """The page a plain form post returns to: the one it came from, if it is ours."""
    wanted = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("session-history", args=[session.pk])


def _form(
    request: HttpRequest,
    session: CaptureSession,
    *,
    status: int = 200,
    error: str = "",
    text: str = "",
    with_list: bool = False,
) -> HttpResponse:
    """The form again (htmx), with what was typed and why it was refused; after a question
    was taken, empty and followed by the list of questions (swapped in by its id)."""
    context = {
        **ask_context(request, session, next_url=_next_url(request, session)),
        "ask_error": error,
        "ask_text": text,
        "oob": True,
    }
    if with_list:
        context["questions"] = _questions(session)
    html = render(request, f"{ASK_TEMPLATE}#form", context).content.decode()
    if with_list:
        html += render(request, f"{ASK_TEMPLATE}#list", context).content.decode()
    return HttpResponse(html, status=status)


@require_http_methods(["GET", "POST"])
@never_cache
def session_ask(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the questions card (the history page loads it). POST ``question``: ask it."""
    session = access.viewable_session(request, pk)
    if request.method == "GET":
        current = request.htmx.current_url_abs_path if request.htmx else None
        context = ask_context(
            request, session, next_url=current or reverse("session-history", args=[pk])
        )
        context["questions"] = _questions(session)
        return render(request, f"{ASK_TEMPLATE}#card", context)

    text = request.POST.get("question", "")
    asker = access.may_ask(request, session)
    if asker is None:
        if request.htmx:
            return _form(request, session, status=403, error=NOT_ALLOWED, text=text)
        return HttpResponse(NOT_ALLOWED, status=403, content_type="text/plain; charset=utf-8")
    try:
        question = ask.ask(session, text, asker)
    except ask.Refused as exc:
        if request.htmx:
            return _form(request, session, status=exc.status, error=exc.message, text=text)
        messages.error(request, exc.message)
        return redirect(_next_url(request, session))
    if request.htmx:
        return _form(request, session, with_list=True)
    if question.outcome == Question.Outcome.FAILED:
        messages.error(request, f"Could not answer right now: {question.error}")
    else:
        messages.success(request, "Your question is answered under “Ask the meeting”.")
    return redirect(_next_url(request, session))


@require_GET
@never_cache
def catch_up(request: HttpRequest, pk: int) -> HttpResponse:
    """``?since=N``: the brief's items and the alerts that changed after sequence number N
    (empty when nothing did); ``mode=joined`` for a first visit to a meeting under way."""
    session = access.viewable_session(request, pk)
    raw = request.GET.get("since", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_SEQ_DIGITS:
        return HttpResponseBadRequest(
            "“since” must be a sequence number: a whole number, 0 or more.",
            content_type="text/plain; charset=utf-8",
        )
    context = {
        "session": session,
        "catch_up": catchup.since(session, int(raw)),
        "joined": request.GET.get("mode") == "joined",
    }
    return render(request, "sessions_app/catchup.html#panel", context)
