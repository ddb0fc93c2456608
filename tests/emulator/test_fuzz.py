"""Bad input is never a 500: Hypothesis drives every route in the emulator's route table with
generated bodies, path parameters and query strings of every JSON type, with and without a
key, against one emulator, and requires no 5xx and an SDK-shaped error body on every 4xx.

Path parameters are either a real id (so that body validation behind the 404s is reached)
or a generated JSON value; body keys are drawn from the field names the emulator reads."""

from __future__ import annotations

import inspect
import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import videodb_emulator
from videodb_emulator.config import make_config
from videodb_emulator.core import Emulator
from videodb_emulator.server import build_app
from videodb_emulator.testing import RunningEmulator, running_emulator

from .conftest import FAST_WEBHOOKS
from .helpers import TINY_SCRIPT, start_active_meeting, streams_by_category

SOURCES = "\n".join(p.read_text() for p in Path(videodb_emulator.__file__).parent.glob("*.py"))
# Every body field and query parameter the emulator reads, straight from its source.
_BODY_FIELD = re.compile(
    r"(?:(?:req_str|opt_\w+)\(\w+, |(?:body|item)(?:\.get\(|\[)|\(|key: )\"(\w+)\""
)
BODY_FIELDS = sorted(
    set(re.findall(r"(?:req_str|opt_\w+)\(\w+, \"(\w+)\"", SOURCES))
    | set(re.findall(r"(?:body|item)(?:\.get\(|\[)\"(\w+)\"", SOURCES))
    | {"script_inline", "status", "action", "channels", "timeline"}
)
QUERY_FIELDS = sorted(
    set(re.findall(r"query_\w+\(request, \"(\w+)\"", SOURCES))
    | set(re.findall(r"request\.query\.get\(\"(\w+)\"", SOURCES))
)
# Strings the emulator gives meaning to, so that generated bodies get past the first check.
MEANINGFUL = [
    "start", "stop", "enable", "disable", "enabled", "disabled", "word", "sentence", "time",
    "shot", "transcript", "semantic", "keyword", "scene", "spoken_word", "score", "text", "json",
    "basic", "toml", "mic:default", "display:1", "default", "http://127.0.0.1:9/hook",
    "-name", "created_at", "error", "slow", "",
]  # fmt: skip
MAX_EXAMPLES = 25


def _fields_read_by(handler: Any) -> list[str]:
    """Body fields a handler reads, itself or through a function of its module it calls."""
    fn = inspect.unwrap(handler)
    module = inspect.getmodule(fn)
    source, read = inspect.getsource(fn), {fn.__name__}
    for _ in range(2):  # the handler's helpers, and theirs
        for name in set(re.findall(r"\b(\w+)\(", source)) - read:
            read.add(name)
            helper = getattr(module, name, None)
            if inspect.isfunction(helper) and inspect.getmodule(helper) is module:
                source += inspect.getsource(helper)
    return sorted(set(_BODY_FIELD.findall(source)) & set(BODY_FIELDS))


def _routes() -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path template, body fields it reads) of every registered route, once each."""
    app = build_app(Emulator(make_config(port=0, default_script=None)))
    seen: dict[tuple[str, str], tuple[str, ...]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("path") or info.get("formatter")
        if template is None or route.method == "HEAD":
            continue
        seen[(route.method, template.rstrip("/") or "/")] = tuple(_fields_read_by(route.handler))
    # Deleting and the control API last: they may remove or stop what other routes use.
    ordered = sorted(seen, key=lambda r: (r[0] == "DELETE", r[1].startswith("/_emulator")))
    return [(method, path, seen[(method, path)]) for method, path in ordered]


ROUTES = _routes()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(MEANINGFUL),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def bodies(fields: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Mostly objects keyed by the fields the route reads; also any JSON, and junk bytes."""
    own = st.sampled_from(fields) if fields else BODY_KEYS
    keys = st.one_of(own, own, own, BODY_KEYS)
    return st.one_of(
        st.dictionaries(keys, json_values, max_size=5),
        st.dictionaries(keys, json_values, max_size=5),
        st.dictionaries(keys, json_values, max_size=5),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=24),
        st.just(b""),
    )


BODY_KEYS = st.sampled_from(BODY_FIELDS)
queries = st.dictionaries(
    st.sampled_from(QUERY_FIELDS) | st.text(max_size=5), json_values.map(_render), max_size=4
)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[RunningEmulator, dict[str, str], requests.Session]]:
    with running_emulator(**FAST_WEBHOOKS, export_delay=None) as emu:
        conn = emu.connect()
        # A session that has recorded and been exported, and one still going.
        done = start_active_meeting(emu, conn, speed=50.0)
        emu.control.wait_for_status(done.id, "stopped", timeout=15)
        done_streams = streams_by_category(conn, done.id)
        video_id = conn.get_capture_session(done.id).export()["video_id"]
        audio_id = done_streams["mic"].export().video_id
        live = conn.create_capture_session(end_user_id="fuzz")
        emu.control.simulate(live.id, TINY_SCRIPT, speed=0.01)
        emu.control.wait_for_status(live.id, "active")
        mic = streams_by_category(conn, live.id)["mic"]
        index = mic.index_audio(prompt="p")
        alert_id = index.create_alert(conn.create_event("p", "l"), "http://127.0.0.1:9/a")
        upload = conn.get("collection/default/upload_url")["upload_url"]
        ids = {
            "coll": "default",
            "sid": live.id,
            "rid": mic.id,
            "iid": index.rtstream_index_id,
            "aid": alert_id,
            "audio": audio_id,
            "vid": video_id,
            "cid": "ws-none",
            "token": upload.rsplit("/", 1)[1],
            "kind": "video",
            "ident": video_id,
            "name": "stream.m3u8",
            "range": "1-2",
            "client_token": conn.generate_client_token(),
        }
        with requests.Session() as http:
            yield emu, ids, http


def _path(template: str, real: dict[str, str], draw: Any) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match[1]
        known = real["audio"] if name == "aid" and template.startswith("/audio") else real[name]
        # Mostly the real id, so that what lies behind the 404 is reached.
        value = draw(st.sampled_from([known] * 7 + [None]))
        if value is None:
            value = draw(json_values.map(_render))
        return urllib.parse.quote(value, safe="")

    return re.sub(r"\{(\w+)[^}]*\}", fill, template)


@pytest.mark.parametrize(
    ("method", "template", "fields"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_no_route_answers_a_5xx_to_any_input(fuzzed, method, template, fields):
    emu, real, http = fuzzed
    # Mostly the API key, so that most examples get past authentication.
    keys = [emu.api_key] * 6 + [real["client_token"], None, "not-a-key"]
    route_bodies = bodies(fields)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.data())
    def fire(data: st.DataObject) -> None:
        path = _path(template, real, data.draw)
        body = data.draw(route_bodies)
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        key = data.draw(st.sampled_from(keys))
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["x-access-token"] = key
        resp = http.request(
            method,
            emu.base_url + path,
            params=data.draw(queries),
            data=raw,
            headers=headers,
            timeout=30,
        )
        if path.startswith("/_emulator/faults"):
            # A fault injected by a generated body must not fail the next example.
            emu.control.clear_faults()
            emu.control.request("DELETE", "faults/generate")
        assert resp.status_code < 500, (method, path, raw, resp.status_code, resp.text)
        if resp.status_code >= 400:
            error = resp.json()
            assert error["success"] is False and error["message"], error

    fire()
