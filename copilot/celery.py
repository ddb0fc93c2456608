"""The Celery application and the retry policy every Copilot task inherits.

Policy (see also the CELERY_* settings): tasks take ids, are idempotent, are acknowledged
late and handed back if a worker dies, and one slow task never holds a second in prefetch.
Nothing reads a task's result (tasks record what happened in the database), so there is no
result backend. A task retries only the narrow errors that may pass (for VideoDB calls,
``RetryableGatewayError``); anything else fails at once and is recorded where a user sees
it. Retries wait ``retry_delay``: exponential from TASK_RETRY_BASE_SECONDS (2 s) with full
jitter, capped at 5 minutes, 8 retries after the first try: at most about 8.5 minutes of
waiting, well inside the broker's one-hour visibility timeout, so Redis never re-delivers a
task still waiting for its retry.
"""

from __future__ import annotations

import os
import random
from typing import Any

from celery import Celery, Task
from django.conf import settings
from kombu.transport import TRANSPORT_ALIASES

from copilot import inprocess_broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")

RETRY_DELAY_MAX_SECONDS = 300


def retry_delay(retries: int) -> float:
    """Seconds to wait after try number ``retries + 1`` failed: anywhere from 0 up to
    TASK_RETRY_BASE_SECONDS * 2**retries, capped at 5 minutes. The full jitter spreads tasks
    that failed together (a VideoDB outage) so they do not all retry together."""
    ceiling = min(RETRY_DELAY_MAX_SECONDS, settings.TASK_RETRY_BASE_SECONDS * 2**retries)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


class CopilotTask(Task):
    """The retry policy, written once.

    A task names the errors that may pass (``retry_for``) and those that will not
    (``give_up_for``); both default to none. The first are retried after ``retry_delay``,
    up to ``max_retries`` times; after the last try, or at once for the second,
    ``on_give_up(task, exc, *args, **kwargs)`` decides the outcome: what it returns is the
    task's result, and by default it raises, ending the task failed. ``on_retrying`` (same
    arguments) runs before each retry is scheduled. Both are task options, like Celery's own
    ``on_failure``: ``@shared_task(retry_for=(…,), on_give_up=record_the_failure)``.
    """

    max_retries = 8
    retry_for: tuple[type[Exception], ...] = ()
    give_up_for: tuple[type[Exception], ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except self.retry_for as exc:
            if self.request.retries >= self.max_retries:
                return self.on_give_up(exc, *args, **kwargs)
            self.on_retrying(exc, *args, **kwargs)
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc
        except self.give_up_for as exc:
            return self.on_give_up(exc, *args, **kwargs)

    def on_retrying(self, exc: Exception, *args: Any, **kwargs: Any) -> None:
        return None

    def on_give_up(self, exc: Exception, *args: Any, **kwargs: Any) -> Any:
        raise exc


# The embedded default's broker (CELERY_BROKER_URL "inprocess://"): see inprocess_broker.py.
TRANSPORT_ALIASES.setdefault(inprocess_broker.ALIAS, f"{inprocess_broker.__name__}:Transport")

app = Celery("copilot", task_cls=CopilotTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
