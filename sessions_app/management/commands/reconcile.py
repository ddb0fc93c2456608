from __future__ import annotations

from django.core.management.base import BaseCommand

from sessions_app.tasks import reconcile


class Command(BaseCommand):
    help = (
        "Run the reconciler once now (beat runs it every RECONCILE_INTERVAL_SECONDS): "
        "enqueue webhook deliveries that were stored but never processed, re-read lagging "
        "sessions from VideoDB, and ask again for exports that got no answer."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts = reconcile()
        self.stdout.write(
            f"enqueued {counts['deliveries']} delivery(ies), re-read {counts['sessions']} "
            f"session(s), re-requested {counts['exports']} export(s)"
        )
