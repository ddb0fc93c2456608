from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from copilot import runtime


class Command(BaseCommand):
    help = (
        "Serve Copilot with Daphne. On the embedded default (no REDIS_URL) the Celery worker "
        "runs inside this process too; with REDIS_URL this is the web process only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")
        parser.add_argument(
            "--with-emulator",
            action="store_true",
            help="also run the local VideoDB emulator on VIDEODB_BASE_URL (development only)",
        )

    def handle(
        self, *args: object, host: str, port: int, with_emulator: bool, **options: object
    ) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535; got {port}")
        embedded = settings.EMBEDDED
        self.stdout.write(
            f"Copilot on http://{host}:{port}/ "
            + ("(embedded: in-memory layer, in-process worker)" if embedded else "(Redis)")
        )
        if with_emulator and not settings.VIDEODB_USES_EMULATOR:
            raise CommandError("--with-emulator makes no sense with VIDEODB_API_KEY set")
        runtime.serve(host, port, embedded=embedded, with_emulator=with_emulator)
