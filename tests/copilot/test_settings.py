"""Start-up refuses malformed configuration with a message naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from copilot.env import database_config, env_bool, env_int, env_list, env_url
from tests.conftest import ROOT


def start_django(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    """Import the settings in a fresh interpreter, as a real start-up would."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_up_refuses_a_missing_secret_key_when_debug_is_off() -> None:
    result = start_django(SECRET_KEY=None, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_start_up_accepts_a_missing_secret_key_in_debug() -> None:
    result = start_django(SECRET_KEY=None, DEBUG="1")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://root@localhost/copilot", "DATABASE_URL must be a postgres://"),
        ("DATABASE_URL", "postgres://localhost:notaport/x", "DATABASE_URL"),
        ("DATABASE_URL", "postgres://localhost", "DATABASE_URL must name a database"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with redis://"),
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("PUBLIC_BASE_URL", "copilot.example.com", "PUBLIC_BASE_URL must start with http://"),
        (
            "PUBLIC_BASE_URL",
            "https://copilot.example.com/app",
            "PUBLIC_BASE_URL must not have a path",
        ),
        ("CSRF_TRUSTED_ORIGINS", "example.com", "CSRF_TRUSTED_ORIGINS must start with http://"),
        (
            "ALLOWED_HOSTS",
            "a.example.com,,b.example.com",
            "ALLOWED_HOSTS must be a comma-separated",
        ),
        ("VIDEODB_BASE_URL", "ftp://videodb", "VIDEODB_BASE_URL must start with http://"),
        (
            "VIDEODB_CLIENT_TOKEN_TTL",
            "ten minutes",
            "VIDEODB_CLIENT_TOKEN_TTL must be a whole number",
        ),
        ("CHANNEL_CAPACITY", "0", "CHANNEL_CAPACITY must be at least 10"),
        (
            "CHANNEL_REDIS_URLS",
            "redis://a:6379/0,localhost:6380",
            "CHANNEL_REDIS_URLS must start with redis://",
        ),
        (
            "CHANNEL_REDIS_URLS",
            "redis://a:6379/0,,",
            "CHANNEL_REDIS_URLS must be a comma-separated",
        ),
        (
            "CHANNEL_REDIS_URLS",
            "redis://a:6379/0,redis://a:6379/0",
            "CHANNEL_REDIS_URLS names a server more than once",
        ),
        ("CHANNEL_REDIS_URLS", "redis://a:6379/0", "CHANNEL_REDIS_URLS needs REDIS_URL"),
        ("FORWARDED_ADDRESS_HEADER", "X-Real-IP: 1", "FORWARDED_ADDRESS_HEADER must be a header"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be"),
    ],
)
def test_start_up_refuses_a_malformed_variable_and_names_it(
    name: str, value: str, message: str
) -> None:
    result = start_django(**{name: value})
    assert result.returncode != 0
    assert message in result.stderr
    # One clear line, not a wall of traceback through Django's internals.
    assert "ImproperlyConfigured" in result.stderr


def channel_layer_hosts(**variables: str) -> list[dict]:
    """The channel layer's hosts as a fresh start-up with ``variables`` configures them."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CHANNEL_REDIS_URLS"}}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps(s.CHANNEL_LAYERS['default']['CONFIG']['hosts']))",
        ],
        cwd=ROOT,
        env={**env, **variables, "DJANGO_SETTINGS_MODULE": "copilot.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_the_channel_layer_is_sharded_over_every_listed_server_with_the_same_options() -> None:
    one = channel_layer_hosts(REDIS_URL="redis://broker:6379/0")
    shards = channel_layer_hosts(
        REDIS_URL="redis://broker:6379/0",
        CHANNEL_REDIS_URLS="redis://live-0:6379/0, redis://live-1:6379/0",
    )
    assert [host["address"] for host in one] == ["redis://broker:6379/0"]
    # In the order given: channels-redis places groups by position in this list.
    assert [host["address"] for host in shards] == [
        "redis://live-0:6379/0",
        "redis://live-1:6379/0",
    ]
    options = {key: value for key, value in one[0].items() if key != "address"}
    assert options["socket_timeout"] > 5 and options["max_connections"] > 100
    for host in shards:
        assert {key: value for key, value in host.items() if key != "address"} == options


def test_public_base_url_is_trusted_as_host_and_origin() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS)",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PUBLIC_BASE_URL": "https://copilot.example.com",
            "ALLOWED_HOSTS": "x.test",
            "DJANGO_SETTINGS_MODULE": "copilot.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "copilot.example.com" in result.stdout
    assert "https://copilot.example.com" in result.stdout


class TestParsers:
    def test_booleans_accept_the_usual_spellings(self) -> None:
        assert env_bool("X", False, {"X": "Yes"}) is True
        assert env_bool("X", True, {"X": "off"}) is False
        assert env_bool("X", True, {}) is True

    def test_integers_reject_words_and_values_below_the_minimum(self) -> None:
        assert env_int("N", 5, environ={"N": " 42 "}) == 42
        with pytest.raises(ImproperlyConfigured, match="N must be a whole number"):
            env_int("N", 5, environ={"N": "4.2"})
        with pytest.raises(ImproperlyConfigured, match="N must be at least 1"):
            env_int("N", 5, minimum=1, environ={"N": "0"})

    def test_lists_are_trimmed(self) -> None:
        assert env_list("L", [], {"L": "a.test, b.test"}) == ["a.test", "b.test"]

    def test_urls_must_have_a_known_scheme_and_a_host(self) -> None:
        assert (
            env_url("U", "", schemes=("https",), environ={"U": "https://x.test"})
            == "https://x.test"
        )
        with pytest.raises(ImproperlyConfigured, match="U must name a host"):
            env_url("U", "", schemes=("https",), environ={"U": "https://"})

    def test_database_urls_for_postgres_and_sqlite(self) -> None:
        pg = database_config("postgres://copilot:s3cret@db.internal:5433/copilot")
        assert pg["ENGINE"] == "django.db.backends.postgresql"
        assert (pg["HOST"], pg["PORT"], pg["NAME"]) == ("db.internal", 5433, "copilot")
        lite = database_config("sqlite:////tmp/copilot.sqlite3")
        assert lite["NAME"] == "/tmp/copilot.sqlite3"

    def test_an_in_memory_sqlite_database_is_refused(self) -> None:
        with pytest.raises(ImproperlyConfigured, match="must name a SQLite file"):
            database_config("sqlite://:memory:")
