from functools import partial

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save


def _index_for_search(sender, instance, created=False, raw=False, **kwargs) -> None:
    # A fixture load (raw) stores rows as they are; `manage.py rebuild_search` indexes them.
    if not raw:
        from sessions_app.history import search

        search.index(instance, created=created)


def _close_live_sockets(sender, request, user=None, **kwargs) -> None:
    # Signing out ends what the sign-in allowed, open live pages included.
    if user is not None:
        from sessions_app.live import broadcast

        transaction.on_commit(partial(broadcast.close_user_sockets, user.pk), robust=True)


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Capture sessions"

    def ready(self) -> None:
        from sessions_app import checks  # noqa: F401 -- registers the system checks
        from sessions_app.models import Alert, BriefItem, Insight, TranscriptSegment

        # Whatever stores an item (relay, backfill, alert callback, brief, admin) keeps search
        # in step: one code path on both databases (sessions_app/history/search.py).
        for model in (TranscriptSegment, Insight, Alert, BriefItem):
            post_save.connect(
                _index_for_search, sender=model, dispatch_uid=f"search-{model.__name__}"
            )
        user_logged_out.connect(_close_live_sockets, dispatch_uid="close-live-sockets")
