"""The embedding API: async start() inside a running loop, and env-configured keys."""

from __future__ import annotations

import aiohttp

from videodb_emulator import DEFAULT_API_KEY, EmulatorServer
from videodb_emulator.config import EmulatorConfig


async def test_server_runs_inside_an_existing_event_loop():
    server = EmulatorServer(port=0)
    base_url = await server.start()
    try:
        headers = {"x-access-token": server.api_key}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(
                f"{base_url}/collection/default/capture/session", json={"end_user_id": "u"}
            ) as resp:
                body = await resp.json()
            assert resp.status == 200 and body["data"]["status"] == "created"
            async with http.get(f"{base_url}/collection/default/websocket") as resp:
                url = (await resp.json())["data"]["websocket_url"]
            async with http.ws_connect(url) as ws:
                first = await ws.receive_json()
                assert first["connection_id"].startswith("ws-")
    finally:
        await server.stop()


def test_api_keys_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VIDEODB_EMULATOR_API_KEYS", "one, two")
    assert EmulatorConfig().api_keys == ("one", "two")
    monkeypatch.delenv("VIDEODB_EMULATOR_API_KEYS")
    assert EmulatorConfig().api_keys == (DEFAULT_API_KEY,)
