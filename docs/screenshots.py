"""Take the README's pictures from a simulated meeting, so that they show what Copilot does.

    .venv/bin/python docs/screenshots.py              # the sales call at 4x: about 2 minutes
    .venv/bin/python docs/screenshots.py --speed 1    # real time, true offsets: about 7 minutes

It runs Copilot the way ``./dev up`` does (DEBUG on, ``migrate``, ``ensure_demo_user``, then
``manage.py serve --with-emulator``: the embedded default, one process) in a throwaway
directory on free ports, so it never touches ``var/`` or a running ``./dev up``. As the demo
user, with the demo's alert rules, it creates a session, plays the scripted meeting (what
**Play a simulated meeting** does), and with Debian's Chromium saves into ``docs/``:

- ``live.png`` and ``live-390.png``: the owner's live page mid-meeting (1440x900, 390x844);
- ``history.png`` and ``history-390.png``: the ended meeting's history page.

Each picture is one screen, as a person sees the page when it opens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# The new-session form's defaults: what a newcomer's session asks the AI for.
AUDIO_PROMPT = "Extract key decisions and action items"
VISUAL_PROMPT = "Describe what is on screen"
# Where in the meeting the live picture is taken: after the scripted alerts and a brief.
MID_MEETING = 0.6
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise SystemExit(f"screenshots: timed out after {timeout:.0f} s waiting for {what}")


def listening(port: int, server: subprocess.Popen) -> bool:
    if server.poll() is not None:
        raise SystemExit(f"screenshots: the server exited with {server.returncode}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", default="sales_call", help="the emulator's meeting script")
    parser.add_argument("--speed", type=float, default=4.0, help="1 = real time (default 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to save them")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway var directory")
    args = parser.parse_args()
    if not 0.5 <= args.speed <= 10:
        parser.error("--speed must be between 0.5 and 10")
    started = time.monotonic()

    var_dir = Path(tempfile.mkdtemp(prefix="copilot-screenshots-"))
    port, emulator_port = free_port(), free_port()
    env = {
        **os.environ,
        "DEBUG": "1",  # as ./dev up
        "COPILOT_VAR_DIR": str(var_dir),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VIDEODB_BASE_URL": f"http://127.0.0.1:{emulator_port}",
        "SIMULATED_MEETING_SPEED": str(args.speed),
        # The brief's clock runs in meeting time, like the meeting.
        "BRIEF_MAX_WAIT_SECONDS": str(max(1, round(60 / args.speed))),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "copilot.settings",
        # Playwright's sync API keeps an event loop in this thread; this script's ORM calls
        # run between browser calls, never beside them.
        "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "VIDEODB_API_KEY"):
        env.pop(name, None)
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--no-input", "-v", "0"], ["ensure_demo_user"]):
        subprocess.run(  # noqa: S603 - this checkout's manage.py, fixed arguments
            manage + command, cwd=ROOT, env=env, check=True, timeout=300, stdout=subprocess.DEVNULL
        )
    os.environ.clear()
    os.environ.update(env)
    log_path = var_dir / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - as above
            [*manage, "serve", "--port", str(port), "--with-emulator"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for("the server", lambda: listening(port, server), 60)
        wait_for("the emulator", lambda: listening(emulator_port, server), 30)
        shots = take(f"http://127.0.0.1:{port}", args)
    except BaseException:
        print(f"screenshots: server log kept at {log_path}", file=sys.stderr)
        args.keep = True
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
    for path in shots:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    print(f"screenshots: done in {time.monotonic() - started:.0f} s", file=sys.stderr)


def log_in_cookie(user: object) -> str:
    """A session for ``user``, as the login form would make (no password needed here)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def take(url: str, args: argparse.Namespace) -> list[Path]:
    import django

    django.setup()
    from playwright.sync_api import sync_playwright

    from sessions_app.capture import handoff, simulator
    from sessions_app.models import AlertRule, Brief, CaptureSession, User
    from videodb_emulator.scripts import ScriptLibrary

    script = ScriptLibrary().get(args.script)
    owner = User.objects.get(username="demo")
    if not AlertRule.objects.filter(owner=owner, is_enabled=True).exists():
        # ensure_demo_user gives the demo rules; without them, the scripts' own alert labels.
        for moment in {moment.label: moment for moment in script.alerts}.values():
            AlertRule.objects.create(
                owner=owner, label=moment.label, prompt=", ".join(moment.keywords)
            )
    session = handoff.create_session(
        owner,
        title=script.title,
        audio_prompt=AUDIO_PROMPT,
        visual_prompt=VISUAL_PROMPT,
        alert_rules=AlertRule.objects.filter(owner=owner, is_enabled=True),
    )
    cookie = {"name": "sessionid", "value": log_in_cookie(owner), "url": url}
    args.out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def fresh(**fields: object) -> bool:
        return CaptureSession.objects.filter(pk=session.pk, **fields).exists()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        pages = {}
        for suffix, viewport in (("", DESKTOP), ("-390", PHONE)):
            context = browser.new_context(viewport=viewport, color_scheme="light")
            context.add_cookies([cookie])
            page = context.new_page()
            page.goto(f"{url}/sessions/{session.pk}/")
            pages[suffix] = page

        print(f"screenshots: playing {args.script} at {args.speed:g}x "
              f"({script.duration / args.speed:.0f} s)", file=sys.stderr)  # fmt: skip
        simulator.play(session, script=args.script)
        wait_for("capture to go live", lambda: fresh(status="active"), 60)
        live_at = time.monotonic()
        time.sleep(MID_MEETING * script.duration / args.speed)
        wait_for("a brief", lambda: Brief.objects.filter(session=session).exists(), 60)
        time.sleep(1.5)  # the pushes of the last moments reach the pages
        for suffix, page in pages.items():
            path = args.out / f"live{suffix}.png"
            page.screenshot(path=path)
            saved.append(path)

        remaining = script.duration / args.speed - (time.monotonic() - live_at)
        wait_for(
            "the meeting to end and its final brief",
            lambda: Brief.objects.filter(session=session, is_final=True).exists(),
            max(remaining, 0) + 180,
        )
        for suffix, page in pages.items():
            page.goto(f"{url}/sessions/{session.pk}/history/")
            path = args.out / f"history{suffix}.png"
            page.screenshot(path=path)
            saved.append(path)
        browser.close()
    return saved


if __name__ == "__main__":
    main()
