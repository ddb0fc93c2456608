"""Parallel test workers never share a Redis database or a var directory (tests/workers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.workers import redis_url_for_worker, worker_index


@pytest.mark.parametrize(
    ("url", "index", "expected"),
    [
        ("redis://127.0.0.1:6379/15", 0, "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/15", 3, "redis://127.0.0.1:6379/12"),
        ("redis://127.0.0.1:6379/1", 2, "redis://127.0.0.1:6379/15"),
        ("redis://:secret@cache:6380", 1, "redis://:secret@cache:6380/15"),
        ("unix:///run/redis.sock?db=2", 1, "unix:///run/redis.sock?db=2"),
    ],
)
def test_each_worker_counts_down_from_the_configured_redis_database(url, index, expected):
    assert redis_url_for_worker(url, index) == expected


def test_this_worker_uses_its_own_var_directory():
    index = worker_index()
    if index is None:
        pytest.skip("not running on an xdist worker")
    assert Path(settings.VAR_DIR).name == f"worker-{index}"
    assert os.environ["COPILOT_VAR_DIR"] == str(settings.VAR_DIR)
