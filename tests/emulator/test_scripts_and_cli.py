"""Meeting scripts (bundled and invalid ones), the alert matching rule, and the CLI."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import videodb

from videodb_emulator.scripts import (
    AUDIO_CHANNELS,
    ScriptError,
    ScriptLibrary,
    load_script,
    parse_script,
)
from videodb_emulator.simulator import alert_matches

from .helpers import TINY_SCRIPT


def test_bundled_scripts_are_valid_meetings_of_5_to_15_minutes():
    library = ScriptLibrary()
    names = library.names()
    assert {"product_planning", "sales_call", "incident_review"} <= set(names)
    for name in ("product_planning", "sales_call", "incident_review"):
        script = library.get(name)
        assert 300 <= script.duration <= 900, name
        assert {u.channel for u in script.utterances} == set(AUDIO_CHANNELS)
        assert len(script.utterances) >= 30 and script.scenes and script.insights and script.alerts
        # Utterances on one channel do not overlap: one speaker stream at a time.
        for channel in AUDIO_CHANNELS:
            spoken = [u for u in script.utterances if u.channel == channel]
            assert all(a.end <= b.start for a, b in itertools.pairwise(spoken))


def test_sales_call_has_pricing_on_screen_and_a_pricing_objection():
    script = ScriptLibrary().get("sales_call")
    assert any("$39" in s.text for s in script.scenes)
    assert "pricing_objection" in {a.label for a in script.alerts}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "'duration' is required"),
        ({"duration": -1}, "'duration' must be a number >= 0"),
        (
            {"duration": 10, "utterances": [{"start": 1, "text": "hi"}]},
            "utterances[0]: 'channel' is required",
        ),
        (
            {"duration": 10, "utterances": [{"channel": "tv", "start": 1, "text": "hi"}]},
            "'channel' must be one of mic, system_audio",
        ),
        (
            {
                "duration": 10,
                "utterances": [{"channel": "mic", "start": 5, "end": 4, "text": "hi"}],
            },
            "'end' (4.0) must be after 'start' (5.0)",
        ),
        ({"duration": 10, "scenes": [{"start": 1, "end": 20, "text": "x"}]}, "scenes[0]"),
        (
            {"duration": 10, "alerts": [{"at": 1, "label": "x", "text": "t", "keywords": "x"}]},
            "keywords",
        ),
        ({"duration": 10, "speakers": []}, "unknown key(s): speakers"),
    ],
)
def test_invalid_scripts_fail_with_a_message_naming_the_field(data, problem):
    with pytest.raises(ScriptError) as info:
        parse_script(data, name="bad")
    assert problem in str(info.value)


def test_script_files_may_be_json_and_errors_name_the_file(tmp_path: Path):
    good = tmp_path / "mini.json"
    good.write_text(
        json.dumps(
            {"duration": 3, "utterances": [{"channel": "mic", "start": 0, "text": "hello there"}]}
        )
    )
    script = load_script(good)
    assert script.utterances[0].end == pytest.approx(0 + 0.38 * 2 + 0.4)
    bad = tmp_path / "broken.toml"
    bad.write_text("duration = = 3")
    with pytest.raises(ScriptError, match=r"broken\.toml.*not valid TOML"):
        load_script(bad)


def test_alert_matching_rule_is_label_equality_or_keyword_in_prompt():
    moment = next(a for a in load_script(TINY_SCRIPT).alerts)
    assert alert_matches("Pricing_Objection", "anything", moment)
    assert alert_matches("other", "Tell me when the PRICE comes up", moment)
    assert not alert_matches("other", "Tell me when someone is angry", moment)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "videodb_emulator", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_help_and_check_script():
    assert "ctl" in _cli("--help").stdout
    result = _cli("check-script", str(TINY_SCRIPT))
    assert result.returncode == 0 and "ok" in result.stdout
    assert '"ground_truth": {"decisions": 1' in result.stdout


def test_cli_serves_and_ctl_drives_the_running_emulator(tmp_path: Path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "videodb_emulator", "--port", str(port)]
    # The session must stay `stopped` while ctl reads it: no export by itself.
    command += ["--api-key", "cli-key", "--export-delay", "off"]
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn = videodb.connect(api_key="cli-key", base_url=url)
        deadline = time.monotonic() + 15
        while True:
            try:
                cap = conn.create_capture_session(end_user_id="cli")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        base = ("ctl", "--url", url, "--api-key", "cli-key")
        started = _cli(*base, "simulate", cap.id, "--script", str(TINY_SCRIPT), "--speed", "40")
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["script"] == "tiny_meeting"
        deadline = time.monotonic() + 15
        while conn.get_capture_session(cap.id).status != "stopped":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        state = json.loads(_cli(*base, "state").stdout)
        assert state["sessions"][0]["status"] == "stopped"
        assert json.loads(_cli(*base, "export", cap.id).stdout)["export_status"] == "exported"
        faults = json.loads(_cli(*base, "faults", "--fail-count", "1", "--status", "500").stdout)
        assert faults["fail_count"] == 1
        fault = json.loads(_cli(*base, "generate-fault", "nonsense", "--count", "2").stdout)
        assert (fault["mode"], fault["count"]) == ("nonsense", 2)
        assert json.loads(_cli(*base, "generate-fault", "clear").stdout)["count"] == 0
        bad = _cli("ctl", "--url", url, "--api-key", "wrong", "state")
        assert bad.returncode == 1 and "401" in bad.stderr
    finally:
        server.terminate()
        server.wait(10)
