"""Who may view which session: the one place the history pages, search, fragments and
exports ask.

A session is viewable by
  * its owner;
  * a signed-in user who opened one of its share links (a SessionViewer row), while that
    link is valid;
  * a browser without an account that opened a share link: the link is remembered in its
    Django session, and counts while it is valid.
Revoking or expiring the link ends both kinds of viewing at once: validity is checked on
every request, never copied.

The live socket asks here too (``live_viewer``), by the same rule, except that a browser
without an account presents its link's token (the share page puts it in the socket's URL)
rather than the links it remembers. Pages that act on a session (hand-off, sharing,
speakers) are its owner's alone (``owned_session``). Asking a session questions is for its
owner and for viewers whose link allows it (``may_ask``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.views import redirect_to_login
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from sessions_app.models import CaptureSession, SessionViewer, ShareLink, User
from sessions_app.viewers import sharing

# Where an anonymous browser keeps the share links it opened (ids only; the token stays in
# the URL it was given).
LINKS_KEY = "viewer_links"
MAX_REMEMBERED_LINKS = 50


def remember(request: HttpRequest, link: ShareLink) -> None:
    """Record that this browser (and its signed-in user, if any) opened ``link``."""
    if request.user.is_authenticated:
        if link.session.owner_id == request.user.pk:
            return
        now = timezone.now()
        viewer, created = SessionViewer.objects.get_or_create(
            link=link, user=request.user, defaults={"session_id": link.session_id}
        )
        if not created:
            SessionViewer.objects.filter(pk=viewer.pk).update(last_seen_at=now)
        return
    remembered = [i for i in request.session.get(LINKS_KEY, []) if i != link.pk]
    request.session[LINKS_KEY] = [link.pk, *remembered][:MAX_REMEMBERED_LINKS]


def _shared_links(user: object) -> QuerySet[ShareLink]:
    """The valid links through which this signed-in user views sessions they do not own."""
    return ShareLink.objects.valid().filter(viewers__user=user)


def viewable(request: HttpRequest) -> QuerySet[CaptureSession]:
    """Every session this request may view, whoever is asking."""
    condition = Q(pk__in=[])
    if request.user.is_authenticated:
        shared = _shared_links(request.user).values("session_id")
        condition = Q(owner=request.user) | Q(pk__in=shared)
    link_ids = request.session.get(LINKS_KEY, []) if hasattr(request, "session") else []
    if link_ids:
        links = ShareLink.objects.valid().filter(pk__in=link_ids)
        condition |= Q(pk__in=links.values("session_id"))
    return CaptureSession.objects.filter(condition)


def can_view_anything(request: HttpRequest) -> bool:
    return request.user.is_authenticated or bool(request.session.get(LINKS_KEY))


def viewable_session(request: HttpRequest, pk: int) -> CaptureSession:
    """The session if this request may view it; 404 otherwise, so existence never leaks."""
    session = viewable(request).filter(pk=pk).select_related("owner").first()
    if session is None:
        raise Http404("No such session.")
    return session


def login_or_404(request: HttpRequest) -> HttpResponse | None:
    """For pages anyone with a link may see: send a visitor with no account and no link to
    sign in (a redirect), and let everyone else on to the per-session check."""
    if can_view_anything(request):
        return None
    return redirect_to_login(request.get_full_path())


def owned_session(request: HttpRequest, pk: int) -> CaptureSession:
    """The session if the signed-in user owns it (the pages that act on it); 404 otherwise,
    so existence never leaks."""
    return get_object_or_404(CaptureSession, pk=pk, owner_id=request.user.pk)


@dataclass(frozen=True)
class Asker:
    """Who asks a session a question: its owner (no link), or a viewer through a link."""

    user: User | None  # None: a browser without an account
    link: ShareLink | None  # the share link that allows asking; None for the owner


def may_ask(request: HttpRequest, session: CaptureSession) -> Asker | None:
    """May this request ask ``session`` questions? Its owner may; anyone else only through a
    valid link of the session on which the owner allowed questions (``can_ask``), opened by
    this signed-in user or remembered by this browser. Call after ``viewable_session``."""
    user = request.user if request.user.is_authenticated else None
    if user is not None and session.owner_id == user.pk:
        return Asker(user, None)
    through = Q(pk__in=request.session.get(LINKS_KEY, []))
    if user is not None:
        through |= Q(viewers__user=user)
    link = (
        ShareLink.objects.valid()
        .filter(through, session=session, can_ask=True)
        .order_by("pk")
        .first()
    )
    return Asker(user, link) if link is not None else None


# --- the live socket --------------------------------------------------------------------------


class Refusal(enum.Enum):
    """Why a live socket may not watch a session."""

    SIGN_IN = "no account and no share link"
    BAD_LINK = "the share link is unknown, revoked, expired or for another session"
    NOT_FOUND = "no such session, or not one this user may view"


@dataclass(frozen=True)
class Viewer:
    """Who may watch a session live, and through which share links (none: its owner)."""

    session: CaptureSession
    link_ids: frozenset[int]
    # When viewing ends unless another link grants it then; None: never by itself.
    expires_at: datetime | None


def live_viewer(user: object, session_id: int, token: str = "") -> Viewer | Refusal:
    """May ``user`` (or whoever holds ``token``) watch session ``session_id`` live?

    A token decides alone (its link must be valid and for this session). Without one, a
    signed-in user may watch what ``viewable`` lets them open: their own sessions and those
    they opened a valid share link to.
    """
    if token:
        link = sharing.resolve(token)
        if link is None or link.session_id != session_id:
            return Refusal.BAD_LINK
        return Viewer(link.session, frozenset({link.pk}), link.expires_at)
    if not getattr(user, "is_authenticated", False):
        return Refusal.SIGN_IN
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None:
        return Refusal.NOT_FOUND
    if session.owner_id == user.pk:
        return Viewer(session, frozenset(), None)
    links = list(_shared_links(user).filter(session_id=session_id))
    if not links:
        return Refusal.NOT_FOUND
    expiries = [link.expires_at for link in links]
    expires_at = None if None in expiries else max(expiries)
    return Viewer(session, frozenset(link.pk for link in links), expires_at)
