"""System checks for configuration that is valid Python but would break a deployment.

Stable ids (``copilot.W…``) so an operator can silence one knowingly with
SILENCED_SYSTEM_CHECKS.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@register(Tags.security, deploy=True)
def check_public_base_url(app_configs, **kwargs) -> list[Warning]:
    url = settings.PUBLIC_BASE_URL
    if not url:
        return [
            Warning(
                "PUBLIC_BASE_URL is not set, so VideoDB cannot be given a webhook URL.",
                hint="Set PUBLIC_BASE_URL to the https:// address VideoDB can reach.",
                id="copilot.W001",
            )
        ]
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in LOCAL_HOSTS:
        return [
            Warning(
                "PUBLIC_BASE_URL is plain http on a public host: webhook secrets would travel "
                "in the clear.",
                hint="Serve Copilot over https and set PUBLIC_BASE_URL=https://…",
                id="copilot.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_videodb_target(app_configs, **kwargs) -> list[Warning]:
    host = urlsplit(settings.VIDEODB_BASE_URL).hostname
    if settings.VIDEODB_API_KEY and host in LOCAL_HOSTS:
        return [
            Warning(
                "VIDEODB_API_KEY is set but VIDEODB_BASE_URL points at this machine.",
                hint="Unset VIDEODB_BASE_URL to use the real VideoDB, or unset "
                "VIDEODB_API_KEY to use the local emulator.",
                id="copilot.W003",
            )
        ]
    return []
