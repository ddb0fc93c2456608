"""A PostgreSQL restart mid-meeting loses nothing, and nobody has to step in: the relay,
the worker and the web server reconnect by themselves, what could not be stored while the
database was away is backfilled once it is back, and the relay does not hammer VideoDB for
new sockets meanwhile.

The database stopped here is a private one (``initdb`` into a temporary directory, on a
free port), never the machine's shared server: the test's own database and the other tests
go on while this one is stopped.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from tests.conftest import (
    ROOT,
    TINY_MEETING,
    free_port,
    process_env,
    start_beat,
    start_relay,
    start_server,
    start_worker,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.timeout(150)]

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
WEBSOCKET_URL = "GET collection/{}/websocket"


class PrivatePostgres:
    """A PostgreSQL server of the test's own, that the test may stop and start."""

    def __init__(self) -> None:
        self.bin = Path(PG_BIN[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="copilot-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/copilot"
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as = ["runuser", "-u", "postgres", "--"]
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--no-sync")  # fmt: skip
        self.start()
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute("CREATE DATABASE copilot")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.dir / "postgres.log"), "-w", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url.replace("postgres://", "postgresql://")) as conn:
            return conn.execute(sql, params).fetchall()

    def remove(self) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if not PG_BIN:
        pytest.skip(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) to run a private one"
        )
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    server = PrivatePostgres()
    try:
        server.init()
        yield server
    finally:
        server.remove()


def manage(env: dict[str, str], *argv: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT, env=process_env(**env), check=True, capture_output=True, text=True,
        timeout=120,
    ).stdout  # fmt: skip


CREATE_SESSION = """
import json
from sessions_app.capture import handoff
from sessions_app.models import User
owner = User.objects.create_user("ada", password="x")
session = handoff.create_session(owner, title="Restart", audio_prompt="Decisions",
                                 visual_prompt="Screen")
print(json.dumps({"id": session.videodb_id,
                  "token": handoff.mint_client_token(session).token}))
"""


def stored(postgres: PrivatePostgres) -> tuple[list, list]:
    """What Copilot stored, as lists: a duplicate would show."""
    segments = postgres.query(
        "SELECT s.videodb_id, t.start_ms, t.text FROM sessions_app_transcriptsegment t"
        " JOIN sessions_app_rtstream s ON s.id = t.stream_id WHERE t.is_final"
    )
    insights = postgres.query(
        "SELECT s.videodb_id, i.kind, i.start_ms, i.text FROM sessions_app_insight i"
        " JOIN sessions_app_rtstream s ON s.id = i.stream_id"
    )
    return sorted(segments), sorted(insights)


def remote_truth(emulator, postgres: PrivatePostgres) -> tuple[list, list]:
    """Everything VideoDB stored for the meeting's streams: final segments and index records."""
    collection = emulator.connect().get_collection()
    segments, records = [], []
    for (rtstream_id,) in postgres.query("SELECT videodb_id FROM sessions_app_rtstream"):
        remote = collection.get_rtstream(rtstream_id)
        for segment in remote.get_transcript(page_size=1000).get("segments", []):
            segments.append((rtstream_id, segment["start"], segment["text"]))
        for index in remote.list_scene_indexes():
            kind = "audio" if index.extraction_type == "transcript" else "visual"
            for record in index.get_scenes(page_size=1000)["scenes"]:
                records.append((rtstream_id, kind, record["start"], record["text"]))
    return sorted(segments), sorted(records)


def keep_cookies(web: requests.Session, response: requests.Response) -> None:
    """Keep the server's cookies over plain HTTP (they are marked Secure)."""
    for cookie in response.cookies:
        web.cookies.set(cookie.name, cookie.value)


def test_a_database_restart_mid_meeting_loses_nothing_and_needs_no_hand(
    postgres: PrivatePostgres, settings, tmp_path: Path
) -> None:
    from videodb_emulator.testing import running_emulator

    env = {
        "DATABASE_URL": postgres.url,
        "VIDEODB_API_KEY": None,
        "TASK_RETRY_BASE_SECONDS": "0",
        "RECONCILE_INTERVAL_SECONDS": "2",
    }
    manage(env, "migrate", "--no-input", "-v", "0")
    with running_emulator() as emulator:
        env["VIDEODB_BASE_URL"] = emulator.base_url
        url, server = start_server(tmp_path, **env)
        processes = [
            server,
            start_worker(tmp_path, PUBLIC_BASE_URL=url, **env),
            start_relay(tmp_path, PUBLIC_BASE_URL=url, **env),
            start_beat(tmp_path, PUBLIC_BASE_URL=url, **env),
        ]
        worker = processes[1]
        try:
            wait_until(
                lambda: postgres.query(
                    "SELECT 1 FROM sessions_app_relayconnection WHERE connection_id <> ''"
                ),
                30,
                "the relay to connect",
            )
            created = json.loads(manage({**env, "PUBLIC_BASE_URL": url}, "shell", "-c",
                                        CREATE_SESSION).strip().splitlines()[-1])  # fmt: skip
            capture_id = created["id"]
            # A fifth of real speed: about 33 s, so the outage falls inside the meeting.
            emulator.control.simulate(
                capture_id, TINY_MEETING, speed=0.2, client_token=created["token"]
            )
            wait_until(
                lambda: postgres.query("SELECT 1 FROM sessions_app_transcriptsegment"),
                40,
                "the first words to be stored",
            )
            before = emulator.control.request_counts()

            # A restart (every pooled connection is now dead), then an outage during which
            # VideoDB's socket drops too: the relay reconnects while the database is away.
            postgres.stop()
            postgres.start()
            time.sleep(1)
            rows = postgres.query("SELECT connection_id FROM sessions_app_relayconnection")
            socket_id = rows[0][0]
            postgres.stop()
            emulator.control.drop_connection(socket_id, abort=True)
            time.sleep(2)
            web = requests.Session()
            assert web.get(f"{url}/healthz", timeout=15).status_code == 503  # it noticed
            time.sleep(10)
            postgres.start()
            worker_log_at = len(worker.log())

            emulator.control.wait_for_meeting(capture_id, timeout=90)
            truth = remote_truth(emulator, postgres)
            assert truth[0] and truth[1]
            wait_until(lambda: stored(postgres) == truth, 45, "the backfill after the restart")
            assert stored(postgres) == truth  # nothing missing, nothing twice

            after = emulator.control.request_counts()
            sockets = sum(
                count - before.get(key, 0)
                for key, count in after.items()
                if key.startswith("GET collection/") and key.endswith("/websocket")
            )
            # A few new sockets at most, not one per failed try.
            assert sockets <= 5, sockets
            # The worker and beat carry on by themselves: the meeting's end is recorded, and
            # the reconciler beat schedules runs on the restarted database.
            wait_until(
                lambda: postgres.query(
                    "SELECT 1 FROM sessions_app_capturesession WHERE status = 'stopped'"
                ),
                30,
                "the worker to record the meeting's end",
            )
            wait_until(
                lambda: re.search(
                    r"Task sessions\.reconcile\[[^\]]+\] succeeded", worker.log()[worker_log_at:]
                ),
                30,
                "a reconcile to succeed after the restart",
            )
            # The web server answers from the restarted database by itself: healthy again,
            # and a signed-in page reads the meeting.
            wait_until(
                lambda: web.get(f"{url}/healthz", timeout=15).status_code == 200,
                20,
                "the web server's health check to pass again",
            )
            login = web.get(f"{url}/accounts/login/", timeout=15)
            keep_cookies(web, login)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
            signed_in = web.post(
                f"{url}/accounts/login/",
                data={"username": "ada", "password": "x", "csrfmiddlewaretoken": token[1]},
                timeout=15,
                allow_redirects=False,
            )
            assert signed_in.status_code == 302, signed_in.status_code
            keep_cookies(web, signed_in)
            dashboard = web.get(f"{url}/", timeout=15)
            assert dashboard.status_code == 200 and "Restart" in dashboard.text
        except BaseException:
            for process in processes:
                sys.stderr.write(process.log()[-15_000:])
            raise
        finally:
            for process in processes:
                process.stop()
