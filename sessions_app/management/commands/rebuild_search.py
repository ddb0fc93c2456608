from __future__ import annotations

from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from sessions_app.history import search
from sessions_app.models import CaptureSession


class Command(BaseCommand):
    help = (
        "Re-create the search entries of every session (or of the given session ids) from "
        "what is stored. Saving an item keeps its entry current; this is for rows written "
        "around the models (a raw fixture load, a restore) or after changing how words are "
        "folded and stemmed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("session_ids", nargs="*", type=int, help="only these sessions")

    def handle(self, *args: object, session_ids: list[int], **options: object) -> None:
        sessions = CaptureSession.objects.order_by("pk")
        if session_ids:
            sessions = sessions.filter(pk__in=session_ids)
            missing = set(session_ids) - set(sessions.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no session with id {', '.join(map(str, sorted(missing)))}")
        count = search.rebuild(sessions.iterator())
        self.stdout.write(f"indexed {count} moment(s) of {sessions.count()} session(s)")
