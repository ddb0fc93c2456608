"""Calls on the request path under one deadline: what answered in time, and nothing more."""

from __future__ import annotations

import threading
import time

import pytest

from sessions_app.gateway import RetryableGatewayError
from sessions_app.history import deadline


def test_calls_run_at_once_and_each_answer_or_error_comes_back_in_order() -> None:
    def slow(value: str) -> str:
        time.sleep(0.3)
        return value

    def failing() -> str:
        raise RetryableGatewayError("VideoDB is down")

    began = time.monotonic()
    answers = deadline.call_all([lambda: slow("a"), failing, lambda: slow("b")], 5.0)
    assert time.monotonic() - began < 0.55  # together, not one after another (0.6 s)
    assert answers[0].result() == "a" and answers[2].result() == "b"
    with pytest.raises(RetryableGatewayError):
        answers[1].result()


def test_a_call_past_the_deadline_is_left_out_and_one_not_started_never_starts() -> None:
    release = threading.Event()
    started: list[int] = []

    def blocked(n: int) -> int:
        started.append(n)
        release.wait(10)
        return n

    # More calls than threads: the last ones are still queued when the deadline passes.
    calls = [lambda n=n: blocked(n) for n in range(deadline.THREADS + 2)]
    began = time.monotonic()
    answers = deadline.call_all(calls, 0.3)
    assert 0.3 <= time.monotonic() - began < 1.0
    assert answers == [None] * len(calls)
    release.set()
    # Queued behind anything still waiting: once it has run, so would have the two left out.
    (after,) = deadline.call_all([lambda: "after"], 5.0)
    assert after.result() == "after"
    assert sorted(started) == list(range(deadline.THREADS))  # the queued two never ran
