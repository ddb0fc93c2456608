"""The Celery application and the retry policy every Copilot task inherits.

Policy (see also the CELERY_* settings): tasks take ids, are idempotent, are acknowledged
late and handed back if a worker dies, and one slow task never holds a second in prefetch.
A task retries only the narrow errors that may pass (for VideoDB calls,
``RetryableGatewayError``); anything else fails at once and is recorded where a user sees
it. Retries back off exponentially from TASK_RETRY_BASE_SECONDS (2 s) with full jitter,
capped at 5 minutes, 8 tries in all: about 12 minutes of trying, well inside the broker's
one-hour visibility timeout, so Redis never re-delivers a task still waiting for its retry.
"""

from __future__ import annotations

import os

from celery import Celery, Task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")


class CopilotTask(Task):
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8

    def backoff(self) -> float:
        """Seconds before the next try: exponential from TASK_RETRY_BASE_SECONDS, capped,
        with full jitter so that tasks failing together do not retry together."""
        return get_exponential_backoff_interval(
            factor=settings.TASK_RETRY_BASE_SECONDS,
            retries=self.request.retries,
            maximum=self.retry_backoff_max,
            full_jitter=True,
        )


app = Celery("copilot", task_cls=CopilotTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="copilot.ping", ignore_result=False)
def ping() -> str:
    """Round trip used by the health check and the worker wiring tests."""
    return "pong"
