"""Fixtures that read like the domain: owners, strangers, sessions, streams, a running server.

Run through ``./dev test`` (both backends) or ``./dev pytest …`` (the embedded default),
which set the environment the settings need.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command

from sessions_app.models import CaptureSession, RTStream, User

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Same algorithm and hash format as production, far fewer rounds: a Daphne started by a
    test still verifies these hashes with its stock hasher, which reads the rounds from them."""

    iterations = 1_000


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> None:
    settings.PASSWORD_HASHERS = ["tests.conftest.FastPBKDF2PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    """Each test starts with no counted sign-in failures or searches (copilot/throttle.py
    counts in the per-process cache, which would otherwise carry over between tests)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def _no_stray_processes(_close_connection_pools: None) -> Iterator[None]:
    """Whatever a failed test left running is stopped, so it cannot hold the test database
    (or a port) into the next run. (Set up after the pools fixture, so torn down before it
    and before the test database is dropped.)"""
    yield
    for process in list(Process.running):
        process.stop()


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup, django_db_blocker) -> Iterator[None]:
    """PostgreSQL pools keep connections open; close them before the test database is
    dropped (this teardown runs before django_db_setup's, which it depends on). A thread
    of an executor (asgiref's, channels') keeps the pooled connection it borrowed until the
    thread ends, after this run: those sessions are ended here, or the drop would fail."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
            if getattr(connection, "pool", None) is not None:
                connection.close_pool()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests run with DEBUG off, like production, so pages need the collected manifest.
    Collected before the tests are (a test module may build the ASGI app on import, and
    WhiteNoise looks for the directory then); not in xdist's controller, which runs none."""
    if getattr(session.config, "workerinput", None) is None and session.config.getoption(
        "numprocesses", default=None
    ):
        return
    call_command("collectstatic", interactive=False, verbosity=0)


# --- people --------------------------------------------------------------------------------


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, **fields: object) -> User:
        return User.objects.create_user(username=username, password=PASSWORD, **fields)

    return make


@pytest.fixture
def owner(make_user: Callable[..., User]) -> User:
    return make_user("olivia", display_name="Olivia Owner")


@pytest.fixture
def stranger(make_user: Callable[..., User]) -> User:
    return make_user("sam", display_name="Sam Stranger")


@pytest.fixture
def staff(make_user: Callable[..., User]) -> User:
    return make_user("ada", is_staff=True, is_superuser=True)


@pytest.fixture
def owner_client(client, owner: User):
    client.force_login(owner)
    return client


# --- sessions and streams ------------------------------------------------------------------


@pytest.fixture
def make_session(db: None) -> Callable[..., CaptureSession]:
    counter = iter(range(1, 10_000))

    def make(owner: User, **fields: object) -> CaptureSession:
        n = next(counter)
        fields.setdefault("title", f"Weekly planning #{n}")
        fields.setdefault("videodb_id", f"cap-test-{owner.pk}-{n}")
        fields.setdefault("end_user_id", f"user-{owner.pk}")
        return CaptureSession.objects.create(owner=owner, **fields)

    return make


@pytest.fixture
def meeting(make_session: Callable[..., CaptureSession], owner: User) -> CaptureSession:
    return make_session(owner, title="Q3 roadmap review", status=CaptureSession.Status.ACTIVE)


@pytest.fixture
def make_stream(db: None) -> Callable[..., RTStream]:
    media = {"mic": ["audio"], "system_audio": ["audio"], "display": ["video"]}

    def make(session: CaptureSession, name: str = "mic:default", **fields: object) -> RTStream:
        category = name.split(":", 1)[0]
        fields.setdefault("videodb_id", f"rts-{session.pk}-{name.replace(':', '-')}")
        fields.setdefault("kind", RTStream.kind_for(name))
        fields.setdefault("media_types", media.get(category, ["audio"]))
        return RTStream.objects.create(session=session, name=name, **fields)

    return make


@pytest.fixture
def mic(make_stream: Callable[..., RTStream], meeting: CaptureSession) -> RTStream:
    return make_stream(meeting, "mic:default")


# --- real servers --------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "the condition"
) -> object:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_subprocess() -> str:
    """The URL of the database the tests are using right now (pytest-django's test copy)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


class Process:
    """A Copilot process started by a test (Daphne or a Celery worker), logging to a file."""

    running: ClassVar[set[Process]] = set()

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        Process.running.add(self)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        Process.running.discard(self)
        self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        Process.running.discard(self)
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def process_env(**overrides: str | None) -> dict[str, str]:
    """This test run's environment for a child process, on the tests' own database."""
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_server(tmp_path: Path, port: int | None = None, **env: str | None) -> tuple[str, Process]:
    """A real Daphne (``manage.py serve``); on the embedded default it runs the worker too."""
    port = port or free_port()
    process = Process(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        process_env(
            ALLOWED_HOSTS="127.0.0.1,localhost", PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **env
        ),
        tmp_path / f"daphne-{port}.log",
    )
    try:
        wait_for_port(port, process.popen)
    except RuntimeError:
        process.stop()
        raise RuntimeError(f"Daphne did not start:\n{process.log()}") from None
    return f"http://127.0.0.1:{port}", process


def start_worker(
    tmp_path: Path, name: str = "worker", *, queues: Sequence[str] = (), **env: str | None
) -> Process:
    """A separate ``celery -A copilot worker`` process (PostgreSQL + Redis only), consuming
    ``queues`` (settings.TASK_QUEUES), or every queue when none are named."""
    only = ["--queues", ",".join(queues)] if queues else []
    return Process(
        [sys.executable, "-m", "celery", "-A", "copilot", "worker", "--pool", "threads",
         "--concurrency", "4", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
         "--hostname", f"{name}@%h", *only],
        process_env(**env),
        tmp_path / f"{name}.log",
    )  # fmt: skip


def start_relay(tmp_path: Path, shard: int = 0, **env: str | None) -> Process:
    """A separate ``manage.py relay`` process (PostgreSQL + Redis only)."""
    return Process(
        [sys.executable, "manage.py", "relay", "--shard", str(shard)],
        process_env(**env),
        tmp_path / f"relay-{shard}.log",
    )


def start_beat(tmp_path: Path, **env: str | None) -> Process:
    """A separate ``celery -A copilot beat`` (the reconciler's clock; PostgreSQL + Redis only)."""
    return Process(
        [sys.executable, "-m", "celery", "-A", "copilot", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        process_env(**env),
        tmp_path / "beat.log",
    )  # fmt: skip


@pytest.fixture
def live_server_url(transactional_db: None, tmp_path: Path) -> Iterator[str]:
    """A real Daphne (``manage.py serve``) on a free port, on the tests' own database."""
    url, process = start_server(tmp_path)
    try:
        yield url
    finally:
        process.stop()


# --- a real browser ------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def chromium() -> Iterator[object]:
    """Debian's Chromium through Playwright, started and stopped around each test.

    Playwright's sync API keeps an asyncio loop running in the main thread while it is
    started; kept for the whole session, that loop would make every later database test
    fail with SynchronousOnlyOperation and every later asyncio test unable to start.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium) -> Iterator[object]:
    context = chromium.new_context()
    page = context.new_page()
    page.console_messages = []  # every console line, to catch CSP violations and JS errors
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.on("pageerror", lambda error: page.console_messages.append(f"pageerror: {error}"))
    yield page
    context.close()


# --- VideoDB: the local emulator, driven through the real SDK -----------------------------

TINY_MEETING = ROOT / "tests" / "emulator" / "tiny_meeting.toml"


@pytest.fixture
def videodb(settings) -> Iterator[object]:
    """A fresh emulator on a free port, with Copilot's gateway pointed at it."""
    from sessions_app import gateway
    from videodb_emulator.testing import running_emulator

    with running_emulator(webhook_backoff_base=0.05, webhook_max_attempts=20) as emulator:
        point_at(settings, emulator)
        yield emulator
        gateway.reset()


def point_at(settings, emulator, public_base_url: str | None = None) -> None:
    """Make this process's gateway talk to ``emulator`` (and, for webhook and alert
    callback URLs, name the server VideoDB should call)."""
    from sessions_app import gateway

    settings.VIDEODB_API_KEY = ""
    settings.VIDEODB_EMULATOR_API_KEY = emulator.api_key
    settings.VIDEODB_BASE_URL = emulator.base_url
    settings.VIDEODB_USES_EMULATOR = True
    if public_base_url:
        settings.PUBLIC_BASE_URL = public_base_url
    gateway.reset()


@pytest.fixture
def in_process_worker(django_db_blocker) -> Iterator[object]:
    """A real Celery worker thread consuming from the configured broker (memory or Redis)."""
    from copilot.celery import app
    from copilot.runtime import InProcessWorker

    worker = InProcessWorker(app, concurrency=2)
    with django_db_blocker.unblock():  # Celery's Django fix-up resets connections at start
        worker.start()
    yield worker
    worker.stop()


@contextlib.contextmanager
def live_stack(
    settings, tmp_path: Path, *, beat: bool = False, **env: str | None
) -> Iterator[dict]:
    """The whole live path for a browser test: a fresh emulator, a Daphne server (on the
    embedded pass it runs the worker and the relay too; with Redis they are processes of
    their own), and this process's gateway pointed at the emulator, once the relay is
    connected. Yields ``{url, server, emulator, env, tmp_path}``; a test that restarts the
    server puts the new one in ``server`` so that it is the one stopped. ``beat``: with
    Redis, run beat too (the embedded server always does). A stack that does not come up
    prints what its processes logged."""
    from sessions_app import gateway
    from sessions_app.models import RelayConnection
    from videodb_emulator.testing import running_emulator

    with running_emulator() as emulator:
        env = {
            "VIDEODB_BASE_URL": emulator.base_url,
            "VIDEODB_API_KEY": None,
            "TASK_RETRY_BASE_SECONDS": "0",
            **env,
        }
        url, server = start_server(tmp_path, **env)
        state = {"url": url, "server": server, "emulator": emulator, "env": env,
                 "tmp_path": tmp_path}  # fmt: skip
        # The worker builds alert callback URLs from PUBLIC_BASE_URL: it must name this server.
        helpers = [] if settings.EMBEDDED else [
            start_worker(tmp_path, PUBLIC_BASE_URL=url, **env),
            start_relay(tmp_path, PUBLIC_BASE_URL=url, **env),
        ]  # fmt: skip
        if beat and not settings.EMBEDDED:
            helpers.append(start_beat(tmp_path, PUBLIC_BASE_URL=url, **env))
        point_at(settings, emulator, url)
        try:
            wait_until(
                lambda: RelayConnection.objects.exclude(connection_id="").exists(),
                30,
                "the relay to connect",
            )
            yield state
        except BaseException:
            for process in [state["server"], *helpers]:
                sys.stderr.write(process.log()[-20_000:])
            raise
        finally:
            gateway.reset()
            for process in helpers:
                process.stop()
            state["server"].stop()
