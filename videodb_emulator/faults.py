"""Fault injection: the next N REST calls fail or are slowed down; generate_text misbehaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class FaultPlan:
    fail_count: int = 0
    fail_status: int = 503
    slow_count: int = 0
    delay: float = 0.0
    injected: int = 0

    def take(self) -> tuple[int | None, float]:
        """Consume one call's worth of faults: (status to fail with, delay seconds)."""
        delay = 0.0
        status = None
        if self.slow_count > 0:
            self.slow_count -= 1
            delay = self.delay
        if self.fail_count > 0:
            self.fail_count -= 1
            status = self.fail_status
            self.injected += 1
        return status, delay

    def set(
        self,
        *,
        fail_count: int | None = None,
        fail_status: int | None = None,
        slow_count: int | None = None,
        delay: float | None = None,
    ) -> None:
        if fail_count is not None:
            self.fail_count = fail_count
        if fail_status is not None:
            self.fail_status = fail_status
        if slow_count is not None:
            self.slow_count = slow_count
        if delay is not None:
            self.delay = delay

    def clear(self) -> None:
        self.fail_count = 0
        self.slow_count = 0
        self.delay = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "fail_count": self.fail_count,
            "fail_status": self.fail_status,
            "slow_count": self.slow_count,
            "delay": self.delay,
            "injected": self.injected,
        }


GENERATION_MODES = ("error", "slow", "malformed", "nonsense", "bad_citations")


@dataclass
class GenerationFaults:
    """The next ``count`` generate_text calls misbehave in one way (after validating input).

    ``error`` answers ``status``; ``slow`` waits ``delay`` s and then answers; ``malformed``
    answers the output cut in half (JSON that does not parse); ``nonsense`` answers prose,
    not JSON; ``bad_citations`` answers the documented shape citing sources never sent.
    """

    mode: str | None = None
    count: int = 0
    status: int = 500
    delay: float = 5.0
    injected: int = 0

    def take(self) -> str | None:
        if self.mode is None or self.count <= 0:
            return None
        self.count -= 1
        self.injected += 1
        mode = self.mode
        if self.count == 0:
            self.mode = None
        return mode

    def set(self, mode: str, count: int, status: int | None, delay: float | None) -> None:
        self.mode, self.count = mode, count
        if status is not None:
            self.status = status
        if delay is not None:
            self.delay = delay

    def clear(self) -> None:
        self.mode, self.count = None, 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "count": self.count,
            "status": self.status,
            "delay": self.delay,
            "injected": self.injected,
        }
