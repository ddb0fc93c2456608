"""Pages. Views parse, authorize and render; the rules live in services and models."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sessions_app.queries import sessions_owned_by

DASHBOARD_PAGE_SIZE = 25


@require_GET
@never_cache  # one person's live sessions: no shared cache, no stale page on "back"
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(sessions_owned_by(request.user), DASHBOARD_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "sessions_app/dashboard.html", {"page": page})
