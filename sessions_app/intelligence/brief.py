"""The live brief: a session's summary, decisions, action items and open questions, each
citing the stored moments that support it, refreshed while the meeting goes on.

``refresh`` makes the next brief when one is due (``schedule``): it claims the session's
brief (one generation in flight; duplicates and retries find it claimed, or nothing new),
builds the prompt from the stored record (``prompts``), asks VideoDB's text generation
through the gateway, checks the answer (``answers``: only numbers that were sent become
evidence, items left without any are dropped), stores it (``items``: a kept item keeps its
row) with a sequence number per changed item, and publishes the changes on commit.

What goes wrong keeps the previous brief and says why on the page ("Brief paused: …"),
until the next good refresh clears it: an answer that is not the JSON asked for, one whose
every item cites nothing that was sent, or VideoDB failing (an outage is raised for the
task to retry; a refusal is not retried). A failed attempt holds the claim for
``BRIEF_MAX_WAIT_SECONDS``, so a broken model is not asked again on every new line.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from sessions_app import gateway
from sessions_app.history import record
from sessions_app.intelligence import answers, items, prompts, schedule
from sessions_app.live import broadcast, ingest
from sessions_app.models import Brief, BriefItem, CaptureSession

logger = logging.getLogger(__name__)

NOT_JSON = "the model's answer was not valid JSON"
NOT_A_BRIEF = "the model's answer did not have the brief's shape"
NO_EVIDENCE = "none of the model's items cited a source it was given"
MAX_REASON = 500


class Busy(Exception):
    """Another generation holds the session's brief (the final pass waits for it)."""


class Paused(Exception):
    """The answer cannot become the brief; the message is the reason shown."""


def refresh(session_id: int, *, final: bool = False, reserved: datetime | None = None) -> str:
    """Make the session's next brief if one is due. Returns what happened.

    Once capture has stopped, every refresh is the final pass (which also settles a brief
    that is already complete); ``final`` asks for it to wait its turn: it raises ``Busy``
    while another generation holds the brief, for the task to retry. ``reserved``: the
    claim the trigger took when it enqueued this refresh (``schedule.after_final_speech``). Raises
    ``gateway.RetryableGatewayError`` when VideoDB is unavailable (the task retries)."""
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None:
        return "gone"
    claim = timezone.now()
    if not schedule.claim(session_id, claim, reserved=reserved):
        if final and session.has_ended:
            raise Busy(f"the brief of session {session_id} is being refreshed")
        return "busy"
    try:
        outcome = _refresh(session, final=session.has_ended)
    except Paused as exc:
        _pause(session_id, str(exc), hold=claim)
        return "paused"
    except gateway.PermanentGatewayError as exc:
        _pause(session_id, f"VideoDB refused to generate the brief: {exc.message}", hold=claim)
        return "paused"
    except BaseException:
        schedule.release(session_id, claim)
        raise
    schedule.release(session_id, claim)
    return outcome


def _refresh(session: CaptureSession, *, final: bool) -> str:
    done = schedule.progress(session.pk)
    if final:
        if not done.new_speech_chars:
            if not done.has_brief:
                return "nothing said"
            if not schedule.anything_new(session.pk, done.through_seq):
                return "nothing new" if done.is_final else _settle(session)
    elif not schedule.due(session, done, timezone.now()):
        return "nothing new"

    # Read before the record: whatever it numbers is in the record (or comes after).
    through_seq = CaptureSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
    previous = Brief.objects.filter(session=session).order_by("-number").first()
    current = list(BriefItem.objects.filter(session=session, is_current=True).order_by("pk"))
    prompt = prompts.build(
        record.load(session),
        previous,
        current,
        budget=settings.BRIEF_PROMPT_BUDGET_CHARS,
        final=session.has_ended,
    )
    if not prompt.sources:
        return "nothing new"
    generated = gateway.generate_text(
        prompt.text, model_name=settings.VIDEODB_TEXT_MODEL, response_type="json"
    )
    checked = _check(session, generated.output, prompt)
    brief = _store(session, prompt, checked, generated, final=final, through_seq=through_seq)
    logger.info(
        "brief %s of session %s: %d sources, %d bytes, dropped %d citations and %d items",
        brief.number, session.pk, brief.source_count, brief.prompt_bytes,
        brief.dropped_citations, brief.dropped_items,
    )  # fmt: skip
    return "made"


def _check(session: CaptureSession, output: object, prompt: prompts.Prompt) -> answers.Checked:
    """The answer, checked; ``Paused`` (and a log line) when it cannot become the brief."""
    reason = NOT_JSON
    try:
        answer = answers.as_object(output)
        reason = NOT_A_BRIEF
        if not any(name in answer for name in prompts.LISTS):
            raise answers.AnswerError(f"none of {', '.join(prompts.LISTS)} in the answer")
        checked = answers.check(answer, prompt.sent, prompts.ACTION_LISTS)
    except answers.AnswerError as exc:
        logger.warning("brief of session %s kept: %s (%s)", session.pk, exc, repr(output)[:200])
        raise Paused(reason) from None
    if checked.dropped_items and not any(checked.lists.values()):
        logger.warning(
            "brief of session %s kept: every item dropped (%d citations never sent)",
            session.pk,
            checked.dropped_citations,
        )
        raise Paused(NO_EVIDENCE)
    return checked


def _store(
    session: CaptureSession,
    prompt: prompts.Prompt,
    checked: answers.Checked,
    generated: gateway.Generated,
    *,
    final: bool,
    through_seq: int,
) -> Brief:
    with transaction.atomic():
        CaptureSession.objects.select_for_update().filter(pk=session.pk).first()
        number = Brief.objects.filter(session=session).aggregate(n=Max("number"))["n"] or 0
        brief = Brief.objects.create(
            session=session,
            number=number + 1,
            is_final=final,
            model_name=generated.model_name[:64],
            prompt_version=prompts.PROMPT_VERSION,
            covered_from_ms=prompt.covered_from_ms,
            covered_through_ms=prompt.covered_through_ms,
            covered_through_seq=through_seq,
            source_count=len(prompt.sources),
            prompt_bytes=len(prompt.text.encode()),
            dropped_citations=checked.dropped_citations,
            dropped_items=checked.dropped_items,
        )
        changed = items.apply(session, brief, checked, ingest.next_seq)
        CaptureSession.objects.filter(pk=session.pk).update(brief_paused="")
        changed_ids = [row.pk for row in changed]
        transaction.on_commit(partial(_publish, session.pk, changed_ids), robust=True)
    return brief


def _settle(session: CaptureSession) -> str:
    """Capture stopped and nothing came after the last brief: it is the final one."""
    last = Brief.objects.filter(session=session).order_by("-number").values_list("pk", flat=True)
    Brief.objects.filter(pk=last[0]).update(is_final=True)
    _publish(session.pk, [])
    return "settled"


def _publish(session_id: int, item_ids: list[int]) -> None:
    """Show the changed items and the brief's status on every open page (after commit)."""
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None:
        return
    rows = BriefItem.objects.filter(pk__in=item_ids).order_by("seq")
    updates = [broadcast.message(row, session) for row in rows]
    broadcast.publish(session, [*updates, broadcast.brief_status_message(session)])


# --- what goes wrong ------------------------------------------------------------------------


def _held_until_later() -> datetime:
    """A claim time that goes stale ``BRIEF_MAX_WAIT_SECONDS`` from now: the back-off after
    a failed attempt."""
    wait = settings.BRIEF_MAX_WAIT_SECONDS - settings.BRIEF_CLAIM_STALE_SECONDS
    return timezone.now() + timedelta(seconds=wait)


def _pause(session_id: int, reason: str, *, hold: datetime | None) -> None:
    """Keep the previous brief and say why; ``hold``: the claim this attempt took, kept as
    the back-off (None: hold only if nothing holds the brief now)."""
    logger.warning("brief of session %s paused: %s", session_id, reason)
    claim = Q(brief_claimed_at=hold) if hold is not None else Q(brief_claimed_at__isnull=True)
    CaptureSession.objects.filter(claim, pk=session_id).update(brief_claimed_at=_held_until_later())
    CaptureSession.objects.filter(pk=session_id).update(brief_paused=reason[:MAX_REASON])
    transaction.on_commit(partial(_publish, session_id, []), robust=True)


def record_unavailable(session_id: int, message: str, *, gave_up: bool = False) -> None:
    """VideoDB's text generation failed: shown while the task retries, and after the last
    try (``gave_up``), which also backs off like any failed attempt."""
    reason = f"VideoDB text generation is unavailable: {message}"
    if gave_up:
        _pause(session_id, reason, hold=None)
        return
    CaptureSession.objects.filter(pk=session_id).update(brief_paused=reason[:MAX_REASON])
    transaction.on_commit(partial(_publish, session_id, []), robust=True)
