"""Typed reading of request bodies and query strings, with messages that say what is wrong."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from .errors import bad_request

_MISSING = object()


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("request body is empty; it must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request(f"request body must be a JSON object, got {type(data).__name__}")
    return data


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_type_name = type_name


def req_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise bad_request(f"'{key}' is required")
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a non-empty string, got {_type_name(value)}")
    if not value.strip():
        what = "it is empty" if not value else "it is only whitespace"
        raise bad_request(f"'{key}' must be a non-empty string; {what}")
    return value


def opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{key}' must be a string, got {_type_name(value)}")
    return value or None


def opt_dict(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"'{key}' must be an object, got {_type_name(value)}")
    return value


def opt_number(
    body: dict[str, Any], key: str, *, minimum: float | None = None, integer: bool = False
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"'{key}' must be a number, got {_type_name(value)}")
    if integer and int(value) != value:
        raise bad_request(f"'{key}' must be an integer")
    if minimum is not None and value < minimum:
        raise bad_request(f"'{key}' must be >= {minimum}")
    return value


def opt_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_request(f"'{key}' must be a boolean, got {_type_name(value)}")
    return value


def query_number(
    request: web.Request, key: str, default: float | None = None, *, minimum: float | None = None
) -> float | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"query parameter '{key}' must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise bad_request(f"query parameter '{key}' must be finite")
    if minimum is not None and value < minimum:
        raise bad_request(f"query parameter '{key}' must be >= {minimum}")
    return value


def query_int(
    request: web.Request, key: str, default: int, *, minimum: int = 1, maximum: int | None = None
) -> int:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter '{key}' must be an integer, got {raw!r}") from None
    if value < minimum:
        raise bad_request(f"query parameter '{key}' must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise bad_request(f"query parameter '{key}' must be <= {maximum}")
    return value


def to_epoch_ms(value: float) -> float:
    """Accept epoch seconds or epoch milliseconds (the SDK documents neither unit).

    Anything below 1e11 cannot be a millisecond timestamp after 1973, so it is
    taken to be seconds.
    """
    return value * 1000.0 if abs(value) < 1e11 else value
