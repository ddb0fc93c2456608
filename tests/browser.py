"""Helpers shared by the browser tests (Playwright driving Debian's Chromium)."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from django.db import connections

from tests.conftest import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page


def orm[T](work: Callable[[], T]) -> T:
    """Run ORM (or channel-layer) ``work`` off the browser's thread.

    While the browser runs, the test's thread has Playwright's event loop, and Django
    rightly refuses ORM calls there; the connection ``work`` opens is closed after it.
    """

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def log_in(page: Page, base_url: str, username: str, next_path: str) -> None:
    """Log in through the real form and land on ``next_path``."""
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{next_path}")


def problems(messages: list[str]) -> list[str]:
    """CSP violations, uncaught errors, failed loads and htmx errors in the console."""
    return [
        message
        for message in messages
        if "Content Security Policy" in message
        or message.startswith("pageerror:")
        or message.startswith("Failed to load resource")
        or "htmx:" in message  # e.g. an oob fragment that found no place on the page
    ]


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two computed ``rgb(r, g, b)`` colours."""

    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"\d+", css)[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
