"""Load test: N simultaneous simulated meetings, each emitting R WebSocket events/s.

The emulator runs as its own process (``python -m videodb_emulator``) so that its
CPU use can be read from /proc; this process plays the backend: it creates the
sessions with the real SDK, starts transcription on both audio streams of every
meeting, and reads every event through the SDK's WebSocketConnection.

Each meeting plays a generated script: on mic and on system audio, back-to-back
utterances of ``words`` words lasting ``words/(R/2)`` seconds, i.e. (words-1)
interims plus one final per utterance, R/2 events/s per channel. Lateness is the
receive time minus the event's ``end`` timestamp, which is the wall-clock
moment the emulator scheduled that event for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import videodb

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
]


def bench_script(
    seconds: float, rate: float, lead_in: float, *, shift: tuple[float, float] = (0.0, 0.0)
) -> dict[str, Any]:
    """A meeting of back-to-back lines on both audio channels, ``rate`` word events/s in all.
    ``shift``: how many seconds later the mic's and the system audio's lines start, so that
    meetings and channels need not end their lines at the same moment; the number of lines
    is the same whatever the shift."""
    length = utterance_seconds(rate)
    count = int((seconds + 1e-9) // length)
    utterances = []
    for channel, delay in zip(("mic", "system_audio"), shift, strict=True):
        for i in range(count):
            t = lead_in + delay + i * length
            utterances.append(
                {
                    "channel": channel,
                    "start": round(t, 6),
                    "end": round(t + length, 6),
                    "text": " ".join(WORDS),
                }
            )
    return {
        "title": "bench",
        "duration": lead_in + seconds + max(shift) + 0.5,
        "utterances": utterances,
    }


def utterance_seconds(rate: float) -> float:
    """How long one line of bench_script lasts at ``rate``."""
    return len(WORDS) / (rate / 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def consume(ws: Any, lateness: list[float], counts: list[int], index: int) -> None:
    async for event in ws.receive():
        if event.get("channel") != "transcript":
            continue
        counts[index] += 1
        lateness.append(time.time() * 1000 - event["data"]["end"])


async def run(args: argparse.Namespace) -> int:
    port = args.port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "videodb_emulator",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
    )
    try:
        conn = videodb.connect(api_key=API_KEY, base_url=base_url)
        for _ in range(100):
            try:
                conn.get_collection()
                break
            except Exception:
                time.sleep(0.1)
        lead_in = args.lead_in
        script = bench_script(args.seconds, args.rate, lead_in)
        sockets = []
        for _ in range(args.meetings):
            sockets.append(await conn.connect_websocket().connect())
        setup_started = time.monotonic()
        sessions = []
        for _ in sockets:
            cap = conn.create_capture_session(end_user_id="bench")
            conn.post(
                f"_emulator/sessions/{cap.id}/simulate", data={"script_inline": script, "speed": 1}
            )
            sessions.append(cap.id)
        coll = conn.get_collection()
        for cap_id, ws in zip(sessions, sockets, strict=True):
            while True:
                cap = conn.get_capture_session(cap_id)
                if cap.status == "active":
                    break
                time.sleep(0.01)
            for category in ("mic", "system_audio"):
                rts = coll.get_rtstream(cap.get_rtstream(category)[0].id)
                rts.start_transcript(ws_connection_id=ws.connection_id)
        setup = time.monotonic() - setup_started
        if setup > lead_in - 1:
            print(f"warning: setup took {setup:.1f}s, longer than the lead-in; raise --lead-in")

        lateness: list[float] = []
        counts = [0] * len(sockets)
        readers = [
            asyncio.create_task(consume(ws, lateness, counts, i)) for i, ws in enumerate(sockets)
        ]
        # Wait until the scripted talk starts, then measure over the talking period.
        await asyncio.sleep(max(0.0, lead_in - setup) + 0.5)
        cpu0, wall0, own0 = cpu_seconds(server.pid), time.monotonic(), time.process_time()
        got0, late0 = sum(counts), len(lateness)
        await asyncio.sleep(args.seconds - 1.0)
        cpu1, wall1, own1 = cpu_seconds(server.pid), time.monotonic(), time.process_time()
        got1 = sum(counts)
        window = wall1 - wall0
        samples = lateness[late0:]
        await asyncio.sleep(2.0)
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
        state = conn.get("_emulator/state")
        finished = sum(1 for m in state["meetings"] if m["state"] == "finished")

        achieved = (got1 - got0) / window
        target = args.meetings * args.rate
        print(
            f"meetings: {args.meetings}, target {args.rate:g} events/s each = {target:g} events/s"
        )
        print(
            f"measured over {window:.1f}s of steady state "
            f"(setup {setup:.1f}s, lead-in {lead_in:g}s)"
        )
        print(
            f"achieved: {achieved:,.0f} events/s received by {len(sockets)} WebSocket consumers "
            f"({achieved / target:.1%} of target)"
        )
        print(
            f"delivery lateness: p50 {percentile(samples, 50):.1f} ms, "
            f"p99 {percentile(samples, 99):.1f} ms, "
            f"max {max(samples, default=float('nan')):.1f} ms "
            f"({len(samples):,} samples)"
        )
        print(
            f"emulator CPU: {(cpu1 - cpu0) / window:.0%} of one core; "
            f"bench consumers CPU: {(own1 - own0) / window:.0%} of one core; "
            f"cores: {os.cpu_count()}"
        )
        print(
            f"emulator totals: sent {state['websocket']['events_sent']:,}, "
            f"lost {state['websocket']['events_lost']:,}, "
            f"meetings finished {finished}/{args.meetings}"
        )
        scheduled = args.meetings * len(script["utterances"]) * len(WORDS)
        print(f"delivered: {sum(counts):,} of {scheduled:,} scheduled transcript events")
        print(
            f"spread: median {statistics.median(counts):,.0f} events per consumer, "
            f"min {min(counts):,}, max {max(counts):,}"
        )
        print("rerun: " + shlex.join(["python", "bench/emulator.py", *sys.argv[1:]]))
        return 0 if achieved >= 0.95 * target else 1
    finally:
        server.terminate()
        server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s per meeting")
    parser.add_argument("--seconds", type=float, default=30.0, help="talking time to measure")
    parser.add_argument("--lead-in", type=float, default=8.0, help="silent seconds for setup")
    parser.add_argument("--port", type=int, default=0)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
