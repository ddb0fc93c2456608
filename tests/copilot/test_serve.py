"""``manage.py serve --with-emulator`` (what ``./dev up`` runs) next to another Copilot that
already holds the emulator's port: the embedded server moves its emulator to a free port,
says where, and uses it; a server with Redis (whose worker and relay would still call the
old address) refuses with a message that says what to do."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sessions_app.models import RelayConnection
from tests.conftest import (
    Process,
    free_port,
    process_env,
    start_server,
    wait_for_port,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (as the first ``./dev up``'s emulator would)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def serve(tmp_path: Path, emulator_port: int, **env: str | None) -> tuple[int, Process]:
    port = free_port()
    process = Process(
        [sys.executable, "-u", "manage.py", "serve", "--port", str(port), "--with-emulator"],
        process_env(
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            VIDEODB_BASE_URL=f"http://127.0.0.1:{emulator_port}",
            VIDEODB_API_KEY=None,
            **env,
        ),
        tmp_path / "serve.log",
    )
    return port, process


def test_the_embedded_server_moves_its_emulator_off_a_taken_port_says_where_and_uses_it(
    transactional_db: None, tmp_path: Path, taken_port: int
) -> None:
    port, server = serve(tmp_path, taken_port, REDIS_URL=None)
    try:
        wait_for_port(port, server.popen)
        moved = re.compile(
            rf"Local VideoDB emulator on http://127\.0\.0\.1:(\d+): "
            rf"http://127\.0\.0\.1:{taken_port} is taken"
        )
        found = wait_until(lambda: moved.search(server.log()), 10, "the new address")
        emulator_port = int(found.group(1))
        assert emulator_port != taken_port
        # The emulator answers there, and this server's relay connected to it.
        scripts = requests.get(
            f"http://127.0.0.1:{emulator_port}/_emulator/scripts",
            headers={"x-access-token": "emulator-dev-key"},
            timeout=5,
        )
        assert scripts.status_code == 200
        wait_until(
            lambda: RelayConnection.objects.exclude(connection_id="").exists(),
            30,
            "the relay to connect to the moved emulator",
        )
        assert server.popen.poll() is None
    finally:
        server.stop()


def test_a_server_with_redis_refuses_a_taken_emulator_port_and_says_what_to_do(
    tmp_path: Path, taken_port: int
) -> None:
    # It stops before it would connect to Redis: no Redis server is needed here.
    _, server = serve(tmp_path, taken_port, REDIS_URL="redis://127.0.0.1:6379/12")
    try:
        assert server.popen.wait(timeout=60) != 0
        log = server.log()
        assert f"http://127.0.0.1:{taken_port} is taken" in log
        assert "set it to a free port for every process" in log
    finally:
        server.stop()


def listen_backlog(port: int) -> int:
    """The accept queue's size of the socket listening on ``port`` (``ss``'s Send-Q for a
    listening socket)."""
    lines = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(lines[2])


def test_the_server_queues_a_burst_of_thousands_of_connects(
    transactional_db: None, tmp_path: Path
) -> None:
    # Twisted's default backlog (50) refused new viewers at ~2,750 sockets on a busy session.
    url, server = start_server(tmp_path)
    try:
        port = int(url.rsplit(":", 1)[1])
        assert listen_backlog(port) >= min(4096, somaxconn())
    finally:
        server.stop()


def somaxconn() -> int:
    """The kernel's cap on any listen backlog."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def sign_in_fails(url: str, username: str, client_address: str) -> str:
    """One wrong password from ``client_address`` as the balancer names it; the page's error."""
    web = requests.Session()
    headers = {"X-Real-IP": client_address}
    page = web.get(f"{url}/accounts/login/", headers=headers, timeout=15)
    for cookie in page.cookies:  # marked Secure; this is plain HTTP
        web.cookies.set(cookie.name, cookie.value)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    answer = web.post(
        f"{url}/accounts/login/",
        data={"username": username, "password": "wrong", "csrfmiddlewaretoken": token},
        headers=headers,
        timeout=15,
    )
    assert answer.status_code == 200, answer.status_code
    return answer.text


def test_behind_a_balancer_sign_in_limits_count_each_client_address(
    transactional_db: None, tmp_path: Path
) -> None:
    # Every request comes from the balancer: without the header, one guesser would lock
    # everyone out. With it, each client's address is its own.
    url, server = start_server(
        tmp_path, FORWARDED_ADDRESS_HEADER="X-Real-IP", LOGIN_ADDRESS_FAILURE_LIMIT="2"
    )
    try:
        for username in ("amy", "bob"):
            assert "Too many failed attempts" not in sign_in_fails(url, username, "203.0.113.7")
        assert "Too many failed attempts" in sign_in_fails(url, "cat", "203.0.113.7")
        assert "Too many failed attempts" not in sign_in_fails(url, "dan", "203.0.113.8")
    finally:
        server.stop()
