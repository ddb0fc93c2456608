from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from sessions_app.models import RelayConnection


class Command(BaseCommand):
    help = "Exit 0 if the relay of --shard has a socket and beat within --max-age seconds."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shard", type=int, default=0)
        parser.add_argument("--max-age", type=int, default=60, help="seconds")

    def handle(self, *args: object, shard: int, max_age: int, **options: object) -> None:
        relay = RelayConnection.objects.filter(shard=str(shard)).first()
        if relay is None or not relay.connection_id:
            raise CommandError(f"relay shard {shard} has no VideoDB socket")
        if relay.heartbeat_at is None or relay.heartbeat_at < timezone.now() - timedelta(
            seconds=max_age
        ):
            raise CommandError(f"relay shard {shard} has not beaten for over {max_age} s")
        self.stdout.write(f"relay shard {shard} up as {relay.connection_id}")
