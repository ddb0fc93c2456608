"""Pages for past sessions: the list, one session's history, search, and exports.

Everything here is for whoever may view the session (sessions_app/viewers/access.py): its owner, a
signed-in user it was shared with, or a browser that opened a share link. Views parse,
authorize and render; searching, timelines and file formats live in their own modules.
"""

from __future__ import annotations

import logging
from functools import partial

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sessions_app import gateway
from sessions_app.forms import HistoryFilterForm, SearchForm
from sessions_app.history import deadline, exports, meaning, record, search, search_text, timeline
from sessions_app.history.queries import with_counts
from sessions_app.intelligence import recap as recaps
from sessions_app.models import CaptureSession, RTStream
from sessions_app.viewers import access

logger = logging.getLogger(__name__)

LIST_PAGE_SIZE = 25
# How long a clip "play from here" opens, from the moment jumped to.
CLIP_MS = 120_000
# How long the history page waits for VideoDB to make that clip before it links the whole
# recording instead.
CLIP_DEADLINE_SECONDS = 3.0


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def is_fragment(request: HttpRequest) -> bool:
    """An htmx request for part of the page (not a boosted navigation or a history restore,
    which need the whole page)."""
    return (
        bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request
    )


# --- the list ---------------------------------------------------------------------------------


def _filtered_sessions(request: HttpRequest, form: HistoryFilterForm):
    sessions = with_counts(access.viewable(request).select_related("owner"))
    if status := form.value("status"):
        sessions = sessions.filter(status=status)
    if start := form.value("date_from"):
        sessions = sessions.filter(created_at__date__gte=start)
    if end := form.value("date_to"):
        sessions = sessions.filter(created_at__date__lte=end)
    if (alerts := form.value("alerts")) == "yes":
        sessions = sessions.filter(alert_count__gt=0)
    elif alerts == "no":
        sessions = sessions.filter(alert_count=0)
    if (whose := form.value("whose")) == "mine":
        sessions = sessions.filter(owner=request.user)
    elif whose == "shared":
        sessions = sessions.filter(~Q(owner=request.user))
    order = HistoryFilterForm.SORTS.get(
        form.value("sort") or "newest", HistoryFilterForm.SORTS["newest"]
    )
    if order[0] == "-duration":
        return sessions.order_by(F("duration").desc(nulls_last=True), *order[1:])
    return sessions.order_by(*order)


@require_GET
@login_required
@never_cache  # one person's private pages: no shared cache, no stale page on "back"
def session_list(request: HttpRequest) -> HttpResponse:
    """The dashboard: the sessions this user owns or was shared, filtered, sorted, paged."""
    form = HistoryFilterForm(request.GET or None)
    paginator = Paginator(_filtered_sessions(request, form), LIST_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    filtered = any(request.GET.get(name) for name in form.fields if name != "sort")
    context = {"form": form, "page": page, "filtered": filtered}
    if is_fragment(request):
        return render(request, "sessions_app/dashboard.html#session-list", context)
    return render(request, "sessions_app/dashboard.html", context)


# --- one session's history --------------------------------------------------------------------


def _jump(request: HttpRequest, rec: record.SessionRecord) -> int | None:
    """The moment asked for with ?at=<VideoDB ms>, as an offset into the session, or None."""
    raw = request.GET.get("at", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16:
        return None
    return max(0, int(raw) - rec.origin_ms)


def _player(session: CaptureSession, rec: record.SessionRecord, offset_ms: int) -> dict:
    """Where to watch the recording from ``offset_ms``: a clip VideoDB generates for that
    range (exported sessions), or nothing. A failure, or no answer within
    CLIP_DEADLINE_SECONDS, is shown (with the whole recording instead), never raised."""
    if session.status != CaptureSession.Status.EXPORTED:
        return {}
    streams = sorted(rec.streams, key=lambda s: (s.kind != RTStream.Kind.SCREEN, s.id))
    if not streams:
        return {"url": session.player_url} if session.player_url else {}
    start = rec.origin_ms + offset_ms
    end = min(start + CLIP_MS, rec.origin_ms + max(rec.duration_ms, offset_ms + 1000))
    make_clip = partial(
        gateway.stream_clip,
        streams[0].videodb_id,
        start,
        max(end, start + 1000),
        title=session.title,
    )
    (answer,) = deadline.call_all([make_clip], CLIP_DEADLINE_SECONDS)
    if answer is None:
        problem = f"it did not answer within {CLIP_DEADLINE_SECONDS:g} s"
    else:
        try:
            return {"url": answer.result().player_url, "clip": True}
        except gateway.GatewayError as exc:
            problem = exc.message
    logger.warning("no clip for session %s at %s: %s", session.pk, start, problem)
    return {"url": session.player_url, "error": problem}


@require_GET
@never_cache
def session_history(request: HttpRequest, pk: int) -> HttpResponse:
    if (login := access.login_or_404(request)) is not None:
        return login
    session = access.viewable_session(request, pk)
    rec = record.load(session)
    offset = _jump(request, rec)
    is_owner = request.user.is_authenticated and session.owner_id == request.user.pk
    recap = recaps.recap(session, origin_ms=rec.origin_ms)
    context = {
        "session": session,
        "record": rec,
        "recap": recap,
        # Signed with the owner's name: theirs to send.
        "email": recaps.email_draft(recap, session) if recap and is_owner else "",
        "timeline": timeline.timeline(rec),
        "counts": timeline.counts(rec),
        "screens": timeline.shown(rec.screens, spans=True),
        "insights": timeline.shown(rec.insights, spans=False),
        "channels": timeline.channel_stats(rec),
        "formats": exports.FORMATS,
        "is_owner": is_owner,
        "jump_offset": offset,
        "jump_line": timeline.moment_at(rec, offset) if offset is not None else None,
        "player": _player(session, rec, offset) if offset is not None else {},
    }
    return render(request, "sessions_app/history.html", context)


@require_GET
@never_cache
def session_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    if (login := access.login_or_404(request)) is not None:
        return login
    session = access.viewable_session(request, pk)
    if fmt not in exports.FORMATS:
        raise Http404("No such export format.")
    is_owner = request.user.is_authenticated and session.owner_id == request.user.pk
    out = exports.render(record.load(session), fmt, for_owner=is_owner)
    response = HttpResponse(out.content, content_type=out.content_type)
    response["Content-Disposition"] = content_disposition_header(True, out.filename)
    return response


# --- search -------------------------------------------------------------------------------------


def _toggled(params: QueryDict, name: str, value: str) -> str:
    """The query string with ``value`` of ``name`` switched on or off, from page 1."""
    copy = params.copy()
    copy.pop("page", None)
    values = copy.getlist(name)
    copy.setlist(name, [v for v in values if v != value] if value in values else [*values, value])
    return "?" + copy.urlencode()


def _page_url(params: QueryDict, page: int) -> str:
    copy = params.copy()
    copy["page"] = str(page)
    return "?" + copy.urlencode()


def _search_request(request: HttpRequest) -> tuple[SearchForm, list[int], str, search.Filters]:
    """The search asked for, over the sessions the visitor may view."""
    session_ids = list(access.viewable(request).values_list("pk", flat=True))
    form = SearchForm(request.GET, session_ids=session_ids)
    filters = search.Filters(
        kinds=tuple(form.value("kind") or ()),
        channels=tuple(form.value("channel") or ()),
        session_ids=tuple(form.value("session") or ()),
        date_from=form.value("date_from"),
        date_to=form.value("date_to"),
    )
    return form, session_ids, form.value("q") or "", filters


def _facets_url(text: str, filters: search.Filters, *, by_meaning: bool) -> str:
    """Where the facets of this search load from: the valid part of it only (a filter the
    page showed as an error is left out there too), so the request is never a 400."""
    params = QueryDict(mutable=True)
    params["q"] = text
    if by_meaning:  # not counted, but kept in the facets' links back to the search
        params["meaning"] = "1"
    params.setlist("kind", list(filters.kinds))
    params.setlist("channel", list(filters.channels))
    params.setlist("session", [str(pk) for pk in filters.session_ids])
    for name in ("date_from", "date_to"):
        if value := getattr(filters, name):
            params[name] = value.isoformat()
    return reverse("search_facets") + "?" + params.urlencode()


@require_GET
@never_cache
def search_page(request: HttpRequest) -> HttpResponse:
    """The hits: one page, newest first, and how many up to search.COUNT_CAP. The counts by
    kind, channel, session and day (every hit read) come after, from search_facets."""
    if (login := access.login_or_404(request)) is not None:
        return login
    form, session_ids, text, filters = _search_request(request)
    query = search_text.parse(text)
    results = search.search(query, session_ids, filters, page=_page_number(request))
    found = meaning.Found()
    if form.value("meaning") and text and results.page <= 1:
        scope = filters.session_ids or session_ids
        user_id = request.user.pk if request.user.is_authenticated else None
        wait = meaning.held_for(user_id, request.session.get(access.LINKS_KEY, []))
        found = meaning.held(wait) if wait else meaning.ask(text, scope, filters)
    items = meaning.merge(results.hits, found.hits, query)
    context = {
        "form": form,
        "query": query,
        "text": text,
        "results": results,
        "items": items,
        "heading": meaning.heading(results.total, items, capped=results.capped),
        "found": found,
        "searched": bool(text.strip()),
        "errors": [e for field in form.errors.values() for e in field],
        "next_url": _page_url(request.GET, results.page + 1) if results.has_next else "",
        "previous_url": _page_url(request.GET, results.page - 1) if results.has_previous else "",
        "facets_url": _facets_url(text, filters, by_meaning=bool(form.value("meaning"))),
        "max_query": search_text.MAX_QUERY_CHARS,
    }
    if is_fragment(request):
        return render(request, "sessions_app/search.html#results", context)
    return render(request, "sessions_app/search.html", context)


@require_GET
@never_cache
def search_facets(request: HttpRequest) -> HttpResponse:
    """Every hit of a search counted by kind, channel, session and day: the region the
    search page loads after its hits (an htmx request), or, without JavaScript, a page of
    its own that the search page links to. The same visitors and sessions as search_page;
    a parameter the page would not have sent (a session not theirs, a bad date) is a 400."""
    if (login := access.login_or_404(request)) is not None:
        return login
    form, session_ids, text, filters = _search_request(request)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        return HttpResponseBadRequest(f"Invalid search: {errors}", content_type="text/plain")
    query = search_text.parse(text)
    counts = search.facet_counts(query, session_ids, filters)
    search_url = reverse("search") + "?" + request.GET.urlencode()
    for facet_name, facets in counts.facets.items():
        param = {"day": "date_from"}.get(facet_name, facet_name)
        for facet in facets:
            if facet_name == "day":
                facet.url = reverse("search") + "?" + _day_params(request.GET, facet.value)
            else:
                facet.url = reverse("search") + _toggled(request.GET, param, facet.value)
    context = {
        "text": text,
        "query": query,
        "counts": counts,
        "total_label": f"{counts.total:,}",
        "search_url": search_url,
        "fragment": is_fragment(request),
    }
    if context["fragment"]:
        return render(request, "sessions_app/search.html#facets", context)
    return render(request, "sessions_app/search_facets.html", context)


def _day_params(params: QueryDict, day: str) -> str:
    copy = params.copy()
    copy.pop("page", None)
    if copy.get("date_from") == day and copy.get("date_to") == day:
        copy.pop("date_from", None)
        copy.pop("date_to", None)
    else:
        copy["date_from"] = day
        copy["date_to"] = day
    return copy.urlencode()
