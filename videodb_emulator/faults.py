"""Fault injection for the REST API: the next N calls fail or are slowed down."""

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
