"""Command line: run the emulator, or drive a running one through the control API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SCRIPT,
    EmulatorConfig,
    api_keys_from_env,
    make_config,
)
from .control_client import ControlClient, ControlError
from .faults import GENERATION_MODES
from .scripts import ScriptError, ScriptLibrary, load_script
from .server import EmulatorServer


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to bind (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=(
            "accepted API key; repeatable (default: $VIDEODB_EMULATOR_API_KEYS or emulator-dev-key)"
        ),
    )
    parser.add_argument("--public-url", help="base URL to advertise in websocket/stream URLs")
    parser.add_argument("--scripts-dir", action="append", default=[], help="extra script directory")
    parser.add_argument("--send-scene-index", action="store_true", help="also emit 'scene_index'")
    parser.add_argument(
        "--export-delay",
        type=_delay,
        default=2.0,
        metavar="SECONDS|off",
        help="a stopped session with a stored channel is exported after this long (default 2)",
    )
    parser.add_argument(
        "--default-script",
        default=DEFAULT_SCRIPT,
        metavar="NAME|none",
        help="meeting played for a session any desktop client starts (default %(default)s)",
    )
    parser.add_argument(
        "--default-script-speed", type=float, default=1.0, help="its speed (default 1)"
    )
    hooks = parser.add_argument_group("webhook delivery")
    hooks.add_argument("--webhook-timeout", type=float, default=30.0, help="seconds (default 30)")
    hooks.add_argument("--webhook-max-attempts", type=int, default=6)
    hooks.add_argument("--webhook-backoff-base", type=float, default=1.0, help="first retry delay")
    hooks.add_argument("--webhook-backoff-max", type=float, default=60.0)
    hooks.add_argument(
        "--duplicate-rate", type=float, default=0.0, help="0..1 chance of a duplicate"
    )
    hooks.add_argument("--shuffle-window", type=int, default=0, help="reorder within N deliveries")
    hooks.add_argument("--seed", type=int, default=None, help="seed for duplicates/shuffling")
    hooks.add_argument("--no-event-id", action="store_true", help="omit event_id from webhooks")
    parser.add_argument("--log-level", default="INFO")


def _delay(value: str) -> float | None:
    if value.strip().lower() in ("off", "none"):
        return None
    seconds = float(value)
    if seconds < 0:
        raise argparse.ArgumentTypeError("must be >= 0, or 'off'")
    return seconds


def _ctl_args(sub: argparse._SubParsersAction) -> None:
    ctl = sub.add_parser("ctl", help="control a running emulator (see 'ctl -h')")
    ctl.add_argument(
        "--url",
        default=os.environ.get("VIDEODB_EMULATOR_URL", f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"),
        help="emulator base URL (default $VIDEODB_EMULATOR_URL or %(default)s)",
    )
    ctl.add_argument("--api-key", default=None, help="API key (default: first configured key)")
    actions = ctl.add_subparsers(dest="action", required=True)
    actions.add_parser("state", help="sessions, connections, meetings, faults")
    d = actions.add_parser("deliveries", help="webhook/alert deliveries with their attempts")
    d.add_argument("--session")
    actions.add_parser("scripts", help="list meeting scripts")
    s = actions.add_parser(
        "simulate", help="play a meeting for a created session, or attach one to a started one"
    )
    s.add_argument("session_id")
    s.add_argument("--script", default="product_planning", help="bundled name or .toml/.json path")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--client-token", help="desktop client token (minted when omitted)")
    sp = actions.add_parser("speed", help="change a running meeting's speed")
    sp.add_argument("session_id")
    sp.add_argument("speed", type=float)
    dr = actions.add_parser("drop", help="drop one WebSocket connection, or all")
    dr.add_argument("connection_id", nargs="?")
    dr.add_argument("--abort", action="store_true", help="abort the TCP connection, no close frame")
    f = actions.add_parser("fail", help="fail a session (sends capture_session.failed)")
    f.add_argument("session_id")
    f.add_argument("--code")
    f.add_argument("--message")
    st = actions.add_parser("stop", help="stop a session (and its meeting)")
    st.add_argument("session_id")
    e = actions.add_parser("export", help="export a stopped session")
    e.add_argument("session_id")
    fa = actions.add_parser("faults", help="make the next API calls fail or be slow")
    fa.add_argument("--fail-count", type=int)
    fa.add_argument("--status", type=int, help="5xx status for failures (default 503)")
    fa.add_argument("--slow-count", type=int)
    fa.add_argument("--delay", type=float)
    fa.add_argument("--clear", action="store_true")
    g = actions.add_parser("generate-fault", help="make the next generate_text calls misbehave")
    g.add_argument("mode", choices=[*GENERATION_MODES, "clear"])
    g.add_argument("--count", type=int, default=1)
    g.add_argument("--status", type=int, help="for 'error': 429 or 5xx (default 500)")
    g.add_argument("--delay", type=float, help="for 'slow': seconds (default 5)")
    w = actions.add_parser("webhooks", help="change webhook delivery at runtime")
    w.add_argument("--duplicate-rate", type=float)
    w.add_argument("--shuffle-window", type=int)
    w.add_argument("--seed", type=int)
    w.add_argument("--event-id", choices=["on", "off"])
    w.add_argument("--timeout", type=float)
    w.add_argument("--max-attempts", type=int)
    w.add_argument("--backoff-base", type=float)
    w.add_argument("--backoff-max", type=float)
    actions.add_parser("token", help="mint a desktop client token")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m videodb_emulator",
        description="Local emulator of the VideoDB Capture API. Without a command it serves.",
    )
    _server_args(parser)
    sub = parser.add_subparsers(dest="command")
    _ctl_args(sub)
    check = sub.add_parser("check-script", help="validate meeting script files")
    check.add_argument("paths", nargs="+")
    return parser


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config = _config(args)
        if config.default_script is not None:
            ScriptLibrary(config.scripts_dirs).get(config.default_script)
    except (ValueError, ScriptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = EmulatorServer(config)
    print(f"VideoDB emulator on http://{args.host}:{args.port} (API key: {config.api_keys[0]})")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve_forever())
    return 0


def _config(args: argparse.Namespace) -> EmulatorConfig:
    return make_config(
        host=args.host,
        port=args.port,
        api_keys=tuple(args.api_keys or api_keys_from_env()),
        public_base_url=args.public_url,
        scripts_dirs=tuple(args.scripts_dir),
        send_scene_index=args.send_scene_index,
        export_delay=args.export_delay,
        default_script=args.default_script,
        default_script_speed=args.default_script_speed,
        webhook_timeout=args.webhook_timeout,
        webhook_max_attempts=args.webhook_max_attempts,
        webhook_backoff_base=args.webhook_backoff_base,
        webhook_backoff_max=args.webhook_backoff_max,
        duplicate_rate=args.duplicate_rate,
        shuffle_window=args.shuffle_window,
        seed=args.seed,
        include_event_id=not args.no_event_id,
    )


def _ctl(args: argparse.Namespace) -> Any:
    client = ControlClient(args.url, args.api_key or api_keys_from_env()[0])
    match args.action:
        case "state":
            return client.state()
        case "deliveries":
            return client.deliveries(session_id=args.session)
        case "scripts":
            return client.scripts()
        case "simulate":
            return client.simulate(args.session_id, args.script, args.speed, args.client_token)
        case "speed":
            return client.set_speed(args.session_id, args.speed)
        case "drop":
            return client.drop_connection(args.connection_id, abort=args.abort)
        case "fail":
            return client.fail_session(args.session_id, args.code, args.message)
        case "stop":
            return client.stop_session(args.session_id)
        case "export":
            return client.export_session(args.session_id)
        case "faults":
            if args.clear:
                return client.clear_faults()
            return client.inject_faults(args.fail_count, args.status, args.slow_count, args.delay)
        case "generate-fault":
            if args.mode == "clear":
                return client.clear_generation_faults()
            return client.inject_generation_fault(args.mode, args.count, args.status, args.delay)
        case "webhooks":
            settings = {
                k: v
                for k, v in {
                    "duplicate_rate": args.duplicate_rate,
                    "shuffle_window": args.shuffle_window,
                    "seed": args.seed,
                    "timeout": args.timeout,
                    "max_attempts": args.max_attempts,
                    "backoff_base": args.backoff_base,
                    "backoff_max": args.backoff_max,
                }.items()
                if v is not None
            }
            if args.event_id:
                settings["include_event_id"] = args.event_id == "on"
            return client.configure_webhooks(**settings)
        case "token":
            return {"token": client.mint_client_token()}
    raise AssertionError(args.action)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ctl":
        try:
            result = _ctl(args)
        except ControlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2))
        return 0
    if args.command == "check-script":
        status = 0
        for path in args.paths:
            try:
                script = load_script(path)
                print(f"ok  {path}: {json.dumps(script.summary())}")
            except ScriptError as exc:
                print(f"bad {exc}", file=sys.stderr)
                status = 1
        return status
    return _serve(args)
