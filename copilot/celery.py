"""The Celery application and the retry policy every Copilot task inherits.

Policy (see also the CELERY_* settings): tasks take ids, are idempotent, are acknowledged
late and handed back if a worker dies, and one slow task never holds a second in prefetch.
A task names the narrow exceptions it retries on (``autoretry_for``); everything else fails
at once and is recorded by the task itself. Retries back off exponentially from 2 s with
full jitter, capped at 5 minutes, 8 tries in all: about 12 minutes of trying, well inside
the broker's one-hour visibility timeout so Redis never re-delivers a task still waiting
for its retry.
"""

from __future__ import annotations

import os

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")


class CopilotTask(Task):
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8


app = Celery("copilot", task_cls=CopilotTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="copilot.ping", ignore_result=False)
def ping() -> str:
    """Round trip used by the health check and the worker wiring tests."""
    return "pong"
