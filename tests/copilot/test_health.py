"""``/healthz`` on a channel layer sharded over several Redis servers names each server, and
one of them down is an outage it reports (503) by its place in ``CHANNEL_REDIS_URLS``.

The single-server and in-memory answers are tested with the pages (tests/sessions_app/
test_views.py) and under load (tests/sessions_app/test_consumers.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.test import AsyncClient

from copilot import health
from tests.redis_shards import RedisServer, redis_servers

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def sharded_layer(settings) -> Iterator[list[RedisServer]]:
    """The channel layer over two Redis servers of the test's own, with the settings' options."""
    with redis_servers(2) as servers:
        layers = copy.deepcopy(settings.CHANNEL_LAYERS)
        template = layers["default"]["CONFIG"]["hosts"][0]
        layers["default"]["CONFIG"]["hosts"] = [
            {**template, "address": server.url} for server in servers
        ]
        settings.CHANNEL_LAYERS = layers
        channel_layers.backends.clear()
        health.forget()
        yield servers
        channel_layers.backends.clear()
        health.forget()


async def test_every_server_of_a_sharded_channel_layer_is_reported(sharded_layer) -> None:
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "channel_layer.0": "ok",
        "channel_layer.1": "ok",
        "channel_layer": "ok",
    }


async def test_one_server_down_is_named_and_fails_the_check(sharded_layer) -> None:
    await sync_to_async(sharded_layer[1].stop)()
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["channel_layer.0"] == "ok"
    assert checks["channel_layer.1"].startswith("error: ")
    assert checks["channel_layer"] == "error: shard 1 down"
    assert checks["database"] == "ok"
