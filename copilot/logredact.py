"""Keep webhook secrets out of the logs.

A webhook's secret is a segment of its URL (``/webhooks/videodb/<secret>/``), and Django logs
every 4xx and 5xx response with its path ("Not Found: /webhooks/videodb/…/"), so a log line
would hand anyone who reads the logs a working callback URL. This filter, on the one console
handler every logger writes through, replaces the secret before a line is formatted.
"""

from __future__ import annotations

import logging
import re

SECRET_IN_PATH = re.compile(r"(/webhooks/videodb/)[^/\s\"']+")
REDACTED = r"\1[secret]"


def redact(text: str) -> str:
    return SECRET_IN_PATH.sub(REDACTED, text)


class RedactWebhookSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
