"""Celery is wired: a task published here is run by a real worker and its answer comes back.

The embedded default runs the worker as a thread of this process (copilot.runtime); with
Redis a separate ``celery -A copilot worker`` process consumes from the broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from celery.result import allow_join_result
from django.conf import settings

from copilot.celery import app, ping
from copilot.runtime import InProcessWorker
from tests.conftest import ROOT


@pytest.fixture
def in_process_worker(django_db_blocker) -> Iterator[InProcessWorker]:
    worker = InProcessWorker(app, concurrency=2)
    with django_db_blocker.unblock():  # Celery's Django fix-up resets connections at start
        worker.start()
    yield worker
    worker.stop()


def test_the_in_process_worker_runs_a_published_task(in_process_worker: InProcessWorker) -> None:
    # A worker thread in this process marks joins as blocking; the test is not a task.
    with allow_join_result():
        assert ping.delay().get(timeout=10) == "pong"


def test_the_retry_policy_backs_off_with_jitter() -> None:
    assert ping.retry_backoff and ping.retry_jitter
    assert ping.max_retries >= 5
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.services
@pytest.mark.timeout(90)
def test_a_separate_worker_process_runs_tasks_through_redis(tmp_path) -> None:
    assert settings.CELERY_BROKER_URL.startswith("redis")
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "copilot", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with allow_join_result():
            assert ping.delay().get(timeout=60) == "pong"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
