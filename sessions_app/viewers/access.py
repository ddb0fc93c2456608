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
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from sessions_app.models import CaptureSession, SessionViewer, ShareLink

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


def _valid_link(prefix: str = "") -> Q:
    now = timezone.now()
    return Q(**{f"{prefix}revoked_at__isnull": True}) & (
        Q(**{f"{prefix}expires_at__isnull": True}) | Q(**{f"{prefix}expires_at__gt": now})
    )


def viewable(request: HttpRequest) -> QuerySet[CaptureSession]:
    """Every session this request may view, whoever is asking."""
    condition = Q(pk__in=[])
    if request.user.is_authenticated:
        shared = SessionViewer.objects.filter(user=request.user).filter(_valid_link("link__"))
        condition = Q(owner=request.user) | Q(pk__in=shared.values("session_id"))
    link_ids = request.session.get(LINKS_KEY, []) if hasattr(request, "session") else []
    if link_ids:
        links = ShareLink.objects.filter(pk__in=link_ids).filter(_valid_link())
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
