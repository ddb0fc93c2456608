from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from copilot import runtime

if TYPE_CHECKING:
    from videodb_emulator.server import EmulatorServer


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
            help=(
                "also run the local VideoDB emulator on VIDEODB_BASE_URL, or on a free port "
                "if that one is taken (development only)"
            ),
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
        emulator = self.start_emulator(embedded) if with_emulator else None
        runtime.serve(host, port, embedded=embedded, emulator=emulator)

    def start_emulator(self, embedded: bool) -> EmulatorServer:
        """The local VideoDB on VIDEODB_BASE_URL, or, when another Copilot holds that port
        and this process is the emulator's only client (the embedded default), on a free
        port that this process then uses."""
        wanted = settings.VIDEODB_BASE_URL
        try:
            emulator = runtime.start_local_emulator(wanted, elsewhere_if_taken=embedded)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise CommandError(
                f"{wanted} is taken (another Copilot's emulator?). With REDIS_URL the worker "
                "and relay call VIDEODB_BASE_URL too, so set it to a free port for every "
                "process, or stop the other one."
            ) from None
        if emulator.base_url != wanted:
            # Everything in this process reads the setting when it calls VideoDB.
            settings.VIDEODB_BASE_URL = emulator.base_url
            self.stdout.write(
                f"Local VideoDB emulator on {emulator.base_url}: {wanted} is taken "
                "(another ./dev up?)"
            )
        else:
            self.stdout.write(f"Local VideoDB emulator on {wanted}")
        self.stdout.flush()  # a log file read while the server runs shows it now
        return emulator
