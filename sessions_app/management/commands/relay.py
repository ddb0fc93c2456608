from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.relay import Relay


class Command(BaseCommand):
    help = (
        "Relay VideoDB's event socket: store every event once and push it to the live pages. "
        "Runs until SIGTERM or SIGINT. With RELAY_SHARDS=N, run one per --shard 0..N-1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shard", type=int, default=0, help="which share of the sessions")

    def handle(self, *args: object, shard: int, **options: object) -> None:
        if not 0 <= shard < settings.RELAY_SHARDS:
            raise CommandError(
                f"--shard must be between 0 and {settings.RELAY_SHARDS - 1} "
                f"(RELAY_SHARDS={settings.RELAY_SHARDS}); got {shard}"
            )
        relay = Relay(shard)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await relay.run(stop)

        self.stdout.write(f"relay shard {shard} of {settings.RELAY_SHARDS} starting")
        asyncio.run(main())
        self.stdout.write(f"relay shard {shard} stopped cleanly: {relay.stats}")
