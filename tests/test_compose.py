"""docker-compose.yml and docker-compose.scale.yml only run commands that exist in this
project, and the scale file's parts fit together: every relay shard once, the same shards
and channel-layer servers in every process, every task's queue consumed, the balancer in
front of every web process.

Docker does not run where the tests run; ``docker compose config`` (or docker-compose 1.29's)
accepts both files, which is checked by hand (README, "Past one machine").
"""

from __future__ import annotations

import re
import shlex
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands

from tests.conftest import ROOT

FILES = ["docker-compose.yml", "docker-compose.scale.yml"]


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def ours(compose: dict) -> dict[str, dict]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "copilot:latest"
    }


def argv(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


@pytest.mark.parametrize("name", FILES)
def test_every_copilot_service_runs_an_existing_command(name: str) -> None:
    services = ours(load(name))
    assert {"migrate", "beat", "emulator"} <= set(services)
    commands = get_commands()
    for service_name, service in services.items():
        args = argv(service)
        if args[:2] == ["python", "manage.py"]:
            assert args[2] in commands, f"{service_name}: manage.py has no command {args[2]!r}"
        elif args[0] == "celery":
            assert args[1:3] == ["-A", "copilot"], f"{service_name}: celery must load copilot"
        elif args[:2] == ["python", "-m"]:
            assert (ROOT / args[2]).is_dir(), f"{service_name}: no package {args[2]!r}"
        else:
            raise AssertionError(f"{service_name}: unrecognised command {args}")


@pytest.mark.parametrize("name", FILES)
def test_every_long_running_service_has_a_health_check(name: str) -> None:
    for service_name, service in load(name)["services"].items():
        if service.get("restart") == "no":
            continue
        assert "healthcheck" in service, f"{service_name} has no health check"


@pytest.mark.parametrize("name", FILES)
def test_copilot_services_use_postgres_and_redis(name: str) -> None:
    for service in ours(load(name)).values():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")


def routed_queues() -> dict[str, str]:
    """Every Copilot task and the queue the settings send it to."""
    import sessions_app.tasks  # noqa: F401 -- registers every task (the workers autodiscover it)
    from copilot.celery import app

    return {
        task: app.amqp.router.route({}, task)["queue"].name
        for task in app.tasks
        if not task.startswith("celery.")
    }


def consumed_queues(service: dict) -> set[str]:
    """The queues a ``celery worker`` service consumes: those it names, else every declared
    queue (or the default one, when none is declared)."""
    from django.conf import settings

    args = argv(service)
    if "-Q" in args:
        return set(args[args.index("-Q") + 1].split(","))
    declared = getattr(settings, "CELERY_TASK_QUEUES", None)
    return {queue.name for queue in declared} if declared else {settings.CELERY_TASK_DEFAULT_QUEUE}


@pytest.mark.parametrize("name", FILES)
def test_every_task_goes_to_a_queue_some_worker_consumes(name: str) -> None:
    workers = [s for s in ours(load(name)).values() if argv(s)[3:4] == ["worker"]]
    assert workers
    consumed = set().union(*(consumed_queues(worker) for worker in workers))
    left = {task: queue for task, queue in routed_queues().items() if queue not in consumed}
    assert not left, f"{name}: no worker consumes the queues of {left}"


class TestScaleFile:
    compose = load("docker-compose.scale.yml")
    services = ours(compose)

    def test_two_of_each_part_that_scales_out(self) -> None:
        commands = [argv(service) for service in self.services.values()]
        assert sum(args[2:3] == ["serve"] for args in commands) == 2
        assert sum(args[2:3] == ["relay"] for args in commands) == 2
        assert sum(args[3:4] == ["worker"] for args in commands) == 2
        assert sum(args[3:4] == ["beat"] for args in commands) == 1  # never more than one

    def test_every_relay_shard_runs_once_and_every_process_agrees_on_the_shards(self) -> None:
        shards = {service["environment"]["RELAY_SHARDS"] for service in self.services.values()}
        assert len(shards) == 1
        count = int(shards.pop())
        relays = [s for s in self.services.values() if argv(s)[2:3] == ["relay"]]
        shard_of = [int(argv(s)[argv(s).index("--shard") + 1]) for s in relays]
        assert sorted(shard_of) == list(range(count))
        for relay, shard in zip(relays, shard_of, strict=True):  # each checks its own beat
            check = relay["healthcheck"]["test"]
            assert check[check.index("relay_health") + 1 :][:2] == ["--shard", str(shard)]

    def test_the_channel_layer_is_sharded_over_its_own_redis_servers(self) -> None:
        urls = {service["environment"]["CHANNEL_REDIS_URLS"] for service in self.services.values()}
        assert len(urls) == 1  # the same list, in the same order, everywhere
        hosts = [urlsplit(url).hostname for url in urls.pop().split(",")]
        assert len(hosts) == len(set(hosts)) == 2
        broker = {urlsplit(s["environment"]["REDIS_URL"]).hostname for s in self.services.values()}
        assert broker.isdisjoint(hosts)  # the broker's traffic stays off the live path
        for host in [*hosts, *broker]:
            assert self.compose["services"][host]["image"].startswith("redis:")

    def test_the_balancer_fronts_every_web_process_and_carries_websockets(self) -> None:
        webs = {name for name, s in self.services.items() if argv(s)[2:3] == ["serve"]}
        balancer = self.compose["services"]["lb"]
        assert set(balancer["depends_on"]) == webs
        mount = next(
            v for v in balancer["volumes"] if v.endswith("/etc/nginx/conf.d/default.conf:ro")
        )
        conf = (ROOT / mount.split(":")[0]).read_text()
        assert set(re.findall(r"^\s*server ([\w-]+):8000", conf, re.MULTILINE)) == webs
        assert "proxy_set_header Upgrade $http_upgrade;" in conf
        assert "proxy_set_header Connection $connection_upgrade;" in conf
        # VideoDB's webhooks come through it, and Django serves it by that name.
        for service in self.services.values():
            env = service["environment"]
            assert urlsplit(env["PUBLIC_BASE_URL"].split(":-")[-1].rstrip("}")).hostname == "lb"
            assert "lb" in env["ALLOWED_HOSTS"]
            assert env["FORWARDED_ADDRESS_HEADER"] == "X-Real-IP"
        assert "proxy_set_header X-Real-IP $remote_addr;" in conf
