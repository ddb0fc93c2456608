"""The configured channel layer delivers group messages, also after a long idle, and takes
a burst of sockets joining at once; sharded over several Redis servers, a message sent from
one process reaches members in others whichever server holds the group and their inboxes.

On the embedded pass this exercises the in-memory layer; on the PostgreSQL + Redis pass
the Redis layer with the connection options set in copilot/settings.py.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.urls import path

from tests.redis_shards import redis_servers

GROUP = "tests.idle"


class GroupEcho(AsyncJsonWebsocketConsumer):
    """Joins one group and forwards what the group is sent: the shape of the live consumer."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def live_update(self, event: dict) -> None:
        await self.send_json({"seq": event["seq"]})


application = URLRouter([path("ws/idle/", GroupEcho.as_asgi())])


async def test_a_group_message_reaches_every_member() -> None:
    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("tests.fanout", channel)
    await layer.group_send("tests.fanout", {"type": "live.update", "seq": 7})
    for channel in channels:
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        assert message == {"type": "live.update", "seq": 7}
        await layer.group_discard("tests.fanout", channel)


@pytest.mark.services
def test_the_services_pass_really_uses_redis() -> None:
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


@pytest.mark.services
@pytest.mark.timeout(60)
@pytest.mark.django_db  # Channels closes stale database connections when a consumer ends
async def test_a_consumer_idle_for_longer_than_ten_seconds_still_gets_its_messages() -> None:
    communicator = WebsocketCommunicator(application, "/ws/idle/")
    connected, _ = await communicator.connect()
    assert connected
    # Longer than redis-py's default 5 s socket timeout and than two BZPOPMIN rounds.
    await asyncio.sleep(12)
    await get_channel_layer().group_send(GROUP, {"type": "live.update", "seq": 1})
    assert await communicator.receive_json_from(timeout=5) == {"seq": 1}
    await communicator.disconnect()


@pytest.mark.services
async def test_a_burst_of_a_thousand_sockets_can_join_groups_at_once() -> None:
    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(1000)]
    await asyncio.gather(*(layer.group_add("tests.burst", c) for c in channels))
    await layer.group_send("tests.burst", {"type": "live.update", "seq": 2})
    received = await asyncio.gather(
        *(asyncio.wait_for(layer.receive(c), timeout=20) for c in channels)
    )
    assert all(message["seq"] == 2 for message in received)
    await asyncio.gather(*(layer.group_discard("tests.burst", c) for c in channels))


@pytest.mark.services
@pytest.mark.timeout(60)
async def test_a_sharded_layer_delivers_between_processes_whichever_server_holds_what() -> None:
    # Two web processes and a relay, each with its own layer object (its own inbox prefix),
    # over two Redis servers: groups on both servers, inboxes on both, every pairing used.
    template = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    with redis_servers(2) as servers:
        hosts = [{**template, "address": server.url} for server in servers]
        relay = RedisChannelLayer(hosts=hosts)
        webs: dict[int, RedisChannelLayer] = {}
        while len(webs) < 2:  # a process's inbox is where its prefix hashes: one on each
            web = RedisChannelLayer(hosts=hosts)
            webs.setdefault(web.consistent_hash(web.non_local_name(await web.new_channel())), web)
        groups = [f"session.{n}" for n in range(1, 21)]
        assert {relay.consistent_hash(group) for group in groups} == {0, 1}
        members = {group: [await web.new_channel() for web in webs.values()] for group in groups}
        for group, channels in members.items():
            for web, channel in zip(webs.values(), channels, strict=True):
                await web.group_add(group, channel)
        assert servers[0].keys("asgi:group:*") and servers[1].keys("asgi:group:*")

        for seq, group in enumerate(groups, start=1):
            await relay.group_send(group, {"type": "live.update", "seq": seq})
        for seq, group in enumerate(groups, start=1):
            for web, channel in zip(webs.values(), members[group], strict=True):
                message = await asyncio.wait_for(web.receive(channel), timeout=5)
                assert message == {"type": "live.update", "seq": seq}, group
        for layer in [relay, *webs.values()]:
            await layer.close_pools()
