"""docker-compose.yml only runs commands that exist in this project."""

from __future__ import annotations

import shlex

import yaml
from django.core.management import get_commands

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OURS = {
    name: service
    for name, service in COMPOSE["services"].items()
    if service.get("image") == "copilot:latest"
}


def test_every_copilot_service_runs_an_existing_command() -> None:
    assert {"web", "worker", "migrate"} <= set(OURS)
    commands = get_commands()
    for name, service in OURS.items():
        argv = service["command"]
        argv = shlex.split(argv) if isinstance(argv, str) else argv
        if argv[:2] == ["python", "manage.py"]:
            assert argv[2] in commands, f"{name}: manage.py has no command {argv[2]!r}"
        elif argv[0] == "celery":
            assert argv[1:3] == ["-A", "copilot"], f"{name}: celery must load the copilot app"
        elif argv[:2] == ["python", "-m"]:
            assert (ROOT / argv[2]).is_dir(), f"{name}: no package {argv[2]!r}"
        else:
            raise AssertionError(f"{name}: unrecognised command {argv}")


def test_every_long_running_service_has_a_health_check() -> None:
    for name, service in COMPOSE["services"].items():
        if service.get("restart") == "no":
            continue
        assert "healthcheck" in service, f"{name} has no health check"


def test_copilot_services_use_postgres_and_redis() -> None:
    for service in OURS.values():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")
