"""The action-items page: the tasks raised in every meeting the visitor may view, and marking
one done or open again (its session's owner only).

Viewing follows sessions_app/viewers/access.py like the history pages: an item of a session
the visitor may not view does not exist for them (404); one they may view but do not own
they see, and cannot mark (403). The listing and the marking are
sessions_app/intelligence/actions.py.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from sessions_app.forms import ActionFilterForm, ActionStatusForm
from sessions_app.history_views import LIST_PAGE_SIZE, is_fragment
from sessions_app.intelligence import actions
from sessions_app.models import BriefItem
from sessions_app.viewers import access

TEMPLATE = "sessions_app/actions.html"


def _asker(request: HttpRequest):
    return request.user if request.user.is_authenticated else None


def _back_to_list(request: HttpRequest) -> str:
    """The list as it was (its filters and page) when the form was sent without htmx."""
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, None) and urlsplit(back).path == reverse("actions"):
        return back
    return reverse("actions")


@require_GET
@never_cache
def action_list(request: HttpRequest) -> HttpResponse:
    if (login := access.login_or_404(request)) is not None:
        return login
    sessions = access.viewable(request)
    form = ActionFilterForm(request.GET or None, series=actions.series_names(sessions))
    filters = actions.Filters(
        whose=form.value("whose") or "",
        owner=form.value("owner") or "",
        status=form.value("status") or "open",
        series=form.value("series") or "",
    )
    items = actions.open_items(sessions, filters, user=_asker(request))
    page = Paginator(items, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "rows": actions.rows(page.object_list, sessions, _asker(request)),
        "status": filters.status,
        "filtered": any(request.GET.get(name) for name in form.fields),
    }
    if is_fragment(request):
        return render(request, f"{TEMPLATE}#action-list", context)
    return render(request, TEMPLATE, context)


@require_POST
@never_cache
def action_status(request: HttpRequest, item_id: int) -> HttpResponse:
    if (login := access.login_or_404(request)) is not None:
        return login
    sessions = access.viewable(request)
    item = get_object_or_404(
        BriefItem.objects.select_related("session", "session__owner"),
        pk=item_id,
        kind=BriefItem.Kind.ACTION,
        session__in=sessions.values("pk"),
    )
    if item.session.owner_id != getattr(_asker(request), "pk", None):
        return HttpResponseForbidden("Only the session's owner can mark its action items.")
    form = ActionStatusForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("The status must be “open” or “done”.")
    actions.set_status(item, request.user, form.cleaned_data["status"])
    if not request.htmx:
        return redirect(_back_to_list(request))
    item.refresh_from_db()
    (row,) = actions.rows([item], sessions, request.user)
    return render(request, f"{TEMPLATE}#action-row", {"row": row})
