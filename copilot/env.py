"""Typed readers for environment variables.

Every reader raises ``ImproperlyConfigured`` naming the variable, so a typo in a deployment
stops start-up with one clear line instead of a traceback somewhere deep in Django.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (one of 1/0, true/false, yes/no, on/off); got {value!r}"
    )


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None or value == "":
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(
            f"{name} must be a comma-separated list without empty items; got {value!r}"
        )
    return items


def parse_url(
    name: str,
    value: str,
    *,
    schemes: tuple[str, ...],
    allow_path: bool = True,
) -> str:
    """Check that ``value`` is an absolute URL with one of ``schemes``; return it unchanged."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc}); got {value!r}") from None
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name} must start with {' or '.join(s + '://' for s in schemes)}; got {value!r}"
        )
    if not parts.netloc and parts.scheme not in {"sqlite", "unix"}:
        raise ImproperlyConfigured(f"{name} must name a host; got {value!r}")
    if not allow_path and parts.path not in {"", "/"}:
        raise ImproperlyConfigured(f"{name} must not have a path; got {value!r}")
    return value


def env_url(
    name: str,
    default: str,
    *,
    schemes: tuple[str, ...],
    allow_path: bool = True,
    environ: Mapping[str, str] | None = None,
) -> str:
    value = env_str(name, default, environ)
    if not value:
        return value
    return parse_url(name, value, schemes=schemes, allow_path=allow_path)


def origin_of(url: str) -> str:
    """``https://example.com:8443/x`` → ``https://example.com:8443``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def database_config(url: str, *, name: str = "DATABASE_URL") -> dict:
    """Turn a DATABASE_URL into Django's DATABASES["default"]; only PostgreSQL and SQLite."""
    scheme = urlsplit(url).scheme
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise ImproperlyConfigured(
            f"{name} must be a postgres:// or sqlite:// URL; got scheme {scheme!r}"
        )
    try:
        config = dj_database_url.parse(url, conn_health_checks=True)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name} could not be parsed ({exc}); got {url!r}") from None
    if scheme != "sqlite":
        if not config.get("NAME"):
            raise ImproperlyConfigured(f"{name} must name a database; got {url!r}")
        parse_url(name, url, schemes=("postgres", "postgresql", "pgsql"))
    elif not config.get("NAME") or config["NAME"] == ":memory:":
        raise ImproperlyConfigured(
            f"{name} must name a SQLite file (sqlite:////absolute/path.sqlite3); got {url!r}"
        )
    return config
