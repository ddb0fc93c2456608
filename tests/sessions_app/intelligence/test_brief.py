"""The live brief against the emulator's generate_text: a bundled meeting stored as the relay
stores it, then refreshed. Evidence resolves to stored moments, a kept item keeps its row,
nothing new asks nothing, and every kind of bad answer or outage keeps the previous brief
and says why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.urls import reverse

from sessions_app import gateway
from sessions_app.history import repeats
from sessions_app.intelligence import brief, prompts
from sessions_app.live import broadcast
from sessions_app.models import (
    Alert,
    Brief,
    BriefItem,
    CaptureSession,
    Insight,
    ShareLink,
    TranscriptSegment,
)
from sessions_app.tasks import refresh_brief
from tests.sessions_app.conftest import HOSTILE
from tests.sessions_app.intelligence.played import live_session, store_meeting
from tests.sessions_app.watching import GroupWatch

GENERATE = "POST collection/default/generate/text"
EVIDENCE_MODELS = {
    "transcript": TranscriptSegment,
    "visual": Insight,
    "audio": Insight,
    "alert": Alert,
}


@pytest.fixture
def session(make_session, make_stream, owner) -> CaptureSession:
    return live_session(make_session, make_stream, owner, started_minutes_ago=10)


def generations(videodb) -> int:
    return videodb.control.request_counts().get(GENERATE, 0)


def current(session: CaptureSession, kind: str | None = None) -> list[BriefItem]:
    items = BriefItem.objects.filter(session=session, is_current=True).order_by("pk")
    return list(items.filter(kind=kind) if kind else items)


def a_minute_later(session: CaptureSession) -> None:
    """As if BRIEF_MAX_WAIT_SECONDS had passed since the brief's claim (or back-off) was
    taken."""
    wait = timedelta(seconds=settings.BRIEF_MAX_WAIT_SECONDS)
    CaptureSession.objects.filter(pk=session.pk).update(
        brief_claimed_at=F("brief_claimed_at") - wait
    )


def paused(session: CaptureSession) -> str:
    return CaptureSession.objects.get(pk=session.pk).brief_paused


def test_a_refresh_stores_a_cited_brief_whose_evidence_resolves_to_stored_moments(
    session, videodb
) -> None:
    store_meeting(session)
    through = CaptureSession.objects.get(pk=session.pk).last_seq

    assert brief.refresh(session.pk) == "made"

    made = Brief.objects.get(session=session)
    assert (made.number, made.is_final, made.model_name) == (1, False, "basic")
    assert made.prompt_version == prompts.PROMPT_VERSION
    assert made.covered_through_seq == through
    assert made.source_count > 50 and made.prompt_bytes > made.source_count * 40
    assert (made.dropped_citations, made.dropped_items) == (0, 0)
    decisions, actions = current(session, "decision"), current(session, "action")
    assert len(decisions) >= 3 and len(actions) >= 5
    assert current(session, "summary") and current(session, "question")
    assert any(item.owner == "Priya" for item in actions)
    for item in current(session):
        assert item.evidence and item.seq > through and item.first_brief == made
        for cited in item.evidence:
            model = EVIDENCE_MODELS[cited["kind"]]
            assert model.objects.filter(session=session, pk=cited["id"]).exists(), cited
        first = min(
            EVIDENCE_MODELS[e["kind"]].objects.get(pk=e["id"]).start_ms for e in item.evidence
        )
        assert item.start_ms == first
    assert paused(session) == ""


def test_nothing_new_said_asks_videodb_nothing(session, videodb) -> None:
    store_meeting(session)
    assert brief.refresh(session.pk) == "made"
    asked = generations(videodb)

    assert brief.refresh(session.pk) == "nothing new"
    assert brief.refresh(session.pk) == "nothing new"

    assert generations(videodb) == asked == 1
    assert Brief.objects.filter(session=session).count() == 1


def test_a_refresh_that_keeps_an_item_keeps_its_row_and_adds_the_new_ones(
    session, videodb, settings
) -> None:
    settings.BRIEF_MIN_NEW_CHARS = 1
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    first = {item.pk: item for item in current(session)}
    first_decisions = {i.pk for i in first.values() if i.kind == "decision"}
    assert first_decisions

    store_meeting(session, from_s=200)
    assert brief.refresh(session.pk) == "made"

    second = current(session)
    assert first_decisions <= {item.pk for item in second}  # kept: same rows
    assert len(current(session, "decision")) > len(first_decisions)  # and the new ones
    for kind in ("decision", "action"):
        texts = [item.text for item in current(session, kind)]
        assert not any(
            repeats.same_text(a, b) for n, a in enumerate(texts) for b in texts[n + 1 :]
        ), texts
    for pk in first_decisions:
        item = BriefItem.objects.get(pk=pk)
        unchanged = item.text == first[pk].text and item.evidence == first[pk].evidence
        assert (item.seq == first[pk].seq) == unchanged  # renumbered only when it changed
        assert item.last_brief.number == 2 and item.first_brief.number == 1


def test_a_refresh_publishes_each_changed_item_and_the_status_once_committed(
    session, videodb, django_capture_on_commit_callbacks
) -> None:
    store_meeting(session, until_s=120)
    with GroupWatch(session.pk) as watch:
        with django_capture_on_commit_callbacks(execute=True):
            brief.refresh(session.pk)
        messages = watch.received()
    items = current(session)
    pushed = [m for m in messages if m["seq"]]
    assert sorted(m["seq"] for m in pushed) == sorted(item.seq for item in items)
    assert all('hx-swap-oob="true"' in m["html"] for m in pushed)
    status = [m["html"] for m in messages if 'id="brief-status"' in m["html"]]
    assert len(status) == 1 and "Updated at" in status[0]


def test_an_item_the_brief_no_longer_holds_leaves_the_page(session, videodb, settings) -> None:
    settings.BRIEF_MIN_NEW_CHARS = 1
    store_meeting(session, lines=["Who signs off the legal wording for the partner email?"])
    brief.refresh(session.pk)
    (question,) = current(session, "question")
    store_meeting(
        session,
        from_s=30,
        lines=[("system_audio", "Yes, the legal team approves the partner email wording.")],
    )

    assert brief.refresh(session.pk) == "made"  # the question was answered: no longer open

    question.refresh_from_db()
    assert not question.is_current
    gone = broadcast.render(question, session=session)
    assert f'id="brief-{question.pk}"' in gone and " hidden" in gone
    replayed = [m["html"] for m in broadcast.replay(session, question.seq - 1)]
    assert any(f'id="brief-{question.pk}"' in html for html in replayed)
    board = broadcast.snapshot(CaptureSession.objects.get(pk=session.pk))
    assert f'id="brief-{question.pk}"' not in "".join(
        "".join(section["items"]) for section in board["brief"]
    )


def test_bad_citations_are_dropped_and_a_brief_left_with_none_keeps_the_previous(
    session, videodb
) -> None:
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    before = {(item.pk, item.seq) for item in current(session)}
    store_meeting(session, from_s=200)
    videodb.control.inject_generation_fault("bad_citations")

    assert brief.refresh(session.pk) == "paused"

    assert paused(session) == brief.NO_EVIDENCE
    assert {(item.pk, item.seq) for item in current(session)} == before
    assert Brief.objects.filter(session=session).count() == 1


def test_citations_never_sent_are_dropped_and_counted_on_the_brief(
    session, videodb, monkeypatch
) -> None:
    store_meeting(
        session, lines=["We decided to ship the beta on Friday.", "Ana: I will prepare the notes."]
    )
    answer = {
        "summary": [],
        "decisions": [
            {"text": "Ship the beta on Friday.", "evidence": [1, 99]},
            {"text": "Hire ten people.", "evidence": [42]},
            {"text": "No evidence at all.", "evidence": []},
        ],
        "action_items": [{"text": "Ana prepares the notes.", "owner": "Ana", "evidence": [2]}],
        "open_questions": None,
    }

    def model_answer(prompt: str, *, model_name: str, response_type: str) -> gateway.Generated:
        return gateway.Generated(output=answer, model_name=model_name)

    # The model is outside our control: here it answers with numbers that were never sent.
    monkeypatch.setattr(gateway, "generate_text", model_answer)
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")

    assert brief.refresh(session.pk, final=True) == "made"

    made = Brief.objects.get(session=session)
    assert (made.dropped_citations, made.dropped_items, made.is_final) == (2, 2, True)
    (decision,) = current(session, "decision")
    first_line = TranscriptSegment.objects.get(session=session, text__startswith="We decided")
    assert decision.evidence == [{"kind": "transcript", "id": first_line.pk}]
    (action,) = current(session, "action")
    assert (action.owner, action.due, action.status) == ("Ana", "", "open")


@pytest.mark.parametrize("mode", ["malformed", "nonsense"])
def test_a_malformed_or_nonsense_answer_keeps_the_previous_brief_and_pauses_it(
    session, videodb, mode
) -> None:
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    before = {(item.pk, item.seq, item.text) for item in current(session)}
    store_meeting(session, from_s=200)
    videodb.control.inject_generation_fault(mode)

    assert brief.refresh(session.pk) == "paused"
    assert paused(session) == brief.NOT_JSON
    assert {(item.pk, item.seq, item.text) for item in current(session)} == before
    html = broadcast.render_brief_status(session)
    assert "Brief paused: the model&#x27;s answer was not valid JSON" in html

    # A failed attempt backs off: the next line does not ask the broken model again at once.
    asked = generations(videodb)
    assert brief.refresh(session.pk) == "busy"
    assert generations(videodb) == asked

    a_minute_later(session)  # the back-off is over
    assert brief.refresh(session.pk) == "made"
    assert paused(session) == ""
    assert Brief.objects.filter(session=session).count() == 2


def test_a_generation_outage_is_retried_then_paused_and_a_later_refresh_clears_it(
    session, videodb, settings
) -> None:
    settings.TASK_RETRY_BASE_SECONDS = 0
    tries = refresh_brief.max_retries + 1
    store_meeting(session)
    videodb.control.inject_generation_fault("error", count=tries, status=500)

    assert refresh_brief.apply(args=(session.pk,)).result == "paused"

    assert generations(videodb) == tries
    assert paused(session).startswith("VideoDB text generation is unavailable: ")
    assert not BriefItem.objects.filter(session=session).exists()

    a_minute_later(session)
    videodb.control.inject_generation_fault("error", count=2, status=500)
    assert refresh_brief.apply(args=(session.pk,)).result == "made"
    assert generations(videodb) == tries + 3
    assert paused(session) == ""


def test_model_text_is_escaped_on_the_page(session, videodb) -> None:
    store_meeting(session, lines=[f"We decided to ship {HOSTILE} on Friday."])
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")
    assert brief.refresh(session.pk, final=True) == "made"

    (decision,) = current(session, "decision")
    assert "<img" in decision.text  # stored as the model wrote it
    board = broadcast.snapshot(CaptureSession.objects.get(pk=session.pk))
    html = "".join("".join(section["items"]) for section in board["brief"])
    pushed = broadcast.render(decision, session=session)
    for rendered in (html, pushed):
        assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
        assert "<img" not in rendered and "<b hx-get" not in rendered


def test_the_final_pass_marks_the_brief_final_without_asking_again_when_nothing_is_new(
    session, videodb
) -> None:
    store_meeting(session)
    brief.refresh(session.pk)
    asked = generations(videodb)
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")

    assert brief.refresh(session.pk, final=True) == "settled"
    assert brief.refresh(session.pk, final=True) == "nothing new"

    assert generations(videodb) == asked
    assert Brief.objects.get(session=session).is_final


def test_the_final_pass_covers_what_came_after_the_last_brief(session, videodb) -> None:
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    store_meeting(session, from_s=200, until_s=215)  # a little more, under the thresholds
    assert brief.refresh(session.pk) == "nothing new"
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")
    through = CaptureSession.objects.get(pk=session.pk).last_seq

    assert brief.refresh(session.pk, final=True) == "made"

    final = Brief.objects.get(session=session, number=2)
    assert final.is_final
    assert final.covered_through_seq == through


def test_a_session_where_nothing_was_said_gets_no_brief(session, videodb) -> None:
    CaptureSession.objects.filter(pk=session.pk).update(status="stopped")
    assert brief.refresh(session.pk, final=True) == "nothing said"
    assert generations(videodb) == 0


def test_the_owner_s_page_and_the_share_page_show_the_brief_at_the_top(
    session, videodb, client, owner
) -> None:
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    decision = current(session, "decision")[0]
    link = ShareLink.objects.create(session=session, created_by=owner)
    client.force_login(owner)
    pages = [
        client.get(reverse("session-detail", args=[session.pk])).content.decode(),
        Client().get(reverse("share-page", args=[link.token])).content.decode(),
    ]
    for page in pages:
        assert page.index('id="brief"') < page.index('id="transcript"')
        assert f'id="brief-{decision.pk}"' in page and "Updated at" in page
        for heading in ("Summary so far", "Decisions", "Action items", "Open questions"):
            assert heading in page
