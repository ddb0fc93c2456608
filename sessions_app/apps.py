from django.apps import AppConfig
from django.db.models.signals import post_save


def _index_for_search(sender, instance, created=False, raw=False, **kwargs) -> None:
    # A fixture load (raw) stores rows as they are; `manage.py rebuild_search` indexes them.
    if not raw:
        from sessions_app import search

        search.index(instance, created=created)


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Capture sessions"

    def ready(self) -> None:
        from sessions_app import checks  # noqa: F401 -- registers the system checks
        from sessions_app.models import Alert, Insight, TranscriptSegment

        # Whatever stores an item (relay, backfill, alert callback, admin) keeps search in
        # step: one code path on both databases (sessions_app/search.py).
        for model in (TranscriptSegment, Insight, Alert):
            post_save.connect(
                _index_for_search, sender=model, dispatch_uid=f"search-{model.__name__}"
            )
