"""Small synchronous client for the control API (stdlib only, usable from any test)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class ControlClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - URL is the emulator's own base URL
            f"{self.base_url}/_emulator/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"x-access-token": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message", "")
            except ValueError:
                message = exc.reason
            raise ControlError(exc.code, message) from None
        return payload.get("data")

    # -- inspection ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return self.request("GET", "state")

    def session(self, session_id: str) -> dict[str, Any]:
        for session in self.state()["sessions"]:
            if session["session_id"] == session_id:
                return session
        raise KeyError(session_id)

    def meeting(self, session_id: str) -> dict[str, Any] | None:
        for meeting in self.state()["meetings"]:
            if meeting["session_id"] == session_id:
                return meeting
        return None

    def deliveries(self, session_id: str | None = None, kind: str | None = None) -> list[dict]:
        query = "&".join(
            f"{k}={v}" for k, v in (("session_id", session_id), ("kind", kind)) if v is not None
        )
        return self.request("GET", "deliveries" + (f"?{query}" if query else ""))["deliveries"]

    def request_counts(self) -> dict[str, int]:
        """REST calls received so far, keyed "METHOD path" (path without slashes at the ends)."""
        return self.request("GET", "requests")["counts"]

    def clear_deliveries(self) -> None:
        self.request("DELETE", "deliveries")

    def scripts(self) -> list[dict[str, Any]]:
        return self.request("GET", "scripts")["scripts"]

    def connections(self) -> list[dict[str, Any]]:
        return self.state()["websocket"]["connections"]

    # -- actions ---------------------------------------------------------------

    def simulate(
        self,
        session_id: str,
        script: str | Path | dict[str, Any] = "product_planning",
        speed: float = 1.0,
        client_token: str | None = None,
    ) -> dict[str, Any]:
        """Start a meeting; ``script`` is a bundled name, a .toml/.json path, or a dict."""
        body: dict[str, Any] = {"speed": speed}
        if isinstance(script, dict):
            body["script_inline"] = script
        elif isinstance(script, Path) or str(script).endswith((".toml", ".json")):
            path = Path(script)
            body.update(
                script=path.stem,
                script_inline=path.read_text(encoding="utf-8"),
                format=path.suffix.lstrip(".").lower(),
            )
        else:
            body["script"] = str(script)
        if client_token:
            body["client_token"] = client_token
        return self.request("POST", f"sessions/{session_id}/simulate", body)

    def set_speed(self, session_id: str, speed: float) -> dict[str, Any]:
        return self.request("POST", f"sessions/{session_id}/speed", {"speed": speed})

    def fail_session(self, session_id: str, code: str | None = None, message: str | None = None):
        body = {k: v for k, v in (("code", code), ("message", message)) if v}
        return self.request("POST", f"sessions/{session_id}/fail", body)

    def stop_session(self, session_id: str) -> dict[str, Any]:
        return self.request("POST", f"sessions/{session_id}/stop", {})

    def export_session(self, session_id: str) -> dict[str, Any]:
        return self.request("POST", f"sessions/{session_id}/export", {})

    def drop_connection(self, connection_id: str | None = None, abort: bool = False) -> list[str]:
        path = f"connections/{connection_id}/drop" if connection_id else "connections/drop"
        return self.request("POST", path, {"abort": abort})["dropped"]

    def inject_faults(
        self,
        fail_count: int | None = None,
        status: int | None = None,
        slow_count: int | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        body = {
            k: v
            for k, v in (
                ("fail_count", fail_count),
                ("status", status),
                ("slow_count", slow_count),
                ("delay", delay),
            )
            if v is not None
        }
        return self.request("POST", "faults", body)

    def clear_faults(self) -> dict[str, Any]:
        return self.request("DELETE", "faults")

    def inject_generation_fault(
        self, mode: str, count: int = 1, status: int | None = None, delay: float | None = None
    ) -> dict[str, Any]:
        """The next ``count`` generate_text calls misbehave: error, slow, malformed, nonsense
        or bad_citations (see the README)."""
        body: dict[str, Any] = {"mode": mode, "count": count}
        if status is not None:
            body["status"] = status
        if delay is not None:
            body["delay"] = delay
        return self.request("POST", "faults/generate", body)

    def clear_generation_faults(self) -> dict[str, Any]:
        return self.request("DELETE", "faults/generate")

    def configure_webhooks(self, **settings: Any) -> dict[str, Any]:
        return self.request("POST", "webhooks", settings)

    def mint_client_token(self, expires_in: int = 3600) -> str:
        return self.request("POST", "tokens", {"expires_in": expires_in})["token"]

    # -- waiting ---------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)

    def wait_for_status(self, session_id: str, status: str, timeout: float = 10.0) -> dict:
        return self.wait_for(
            lambda: (s := self.session(session_id))["status"] == status and s, timeout
        )

    def wait_for_meeting(self, session_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for(
            lambda: (
                (m := self.meeting(session_id))
                and m["state"] in ("finished", "failed", "cancelled")
                and m
            ),
            timeout,
        )
