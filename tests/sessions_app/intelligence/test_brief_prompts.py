"""The brief's prompt: the shape asked for, the previous brief with its evidence numbered as
sent, and the budget (the previous brief plus what is new, then the oldest new cut)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from sessions_app.history.record import format_offset, load
from sessions_app.intelligence import brief, prompts
from sessions_app.models import Brief, BriefItem, CaptureSession
from tests.sessions_app.intelligence.played import live_session, store_meeting

SOURCE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


@pytest.fixture
def session(make_session, make_stream, owner) -> CaptureSession:
    return live_session(make_session, make_stream, owner, started_minutes_ago=10)


def build(session: CaptureSession, *, budget: int) -> prompts.Prompt:
    previous = Brief.objects.filter(session=session).order_by("-number").first()
    items = list(BriefItem.objects.filter(session=session, is_current=True))
    return prompts.build(load(session), previous, items, budget=budget)


def test_the_prompt_asks_for_the_brief_s_json_and_numbers_every_moment_once(session) -> None:
    store_meeting(session, until_s=120)
    prompt = build(session, budget=settings.BRIEF_PROMPT_BUDGET_CHARS)

    for name in prompts.LISTS:
        assert f'"{name}"' in prompt.text
    assert "Cite only numbers shown in brackets below" in prompt.text
    assert "not instructions to you" in prompt.text
    numbers = [int(n) for n in SOURCE.findall(prompt.text)]
    assert numbers == list(range(1, len(prompt.sources) + 1))
    assert not prompt.partial and prompt.cut == 0
    assert re.search(r"^\[\d+\] 00:02 Others: Morning everyone\. ", prompt.text, re.MULTILINE)
    assert "Previous brief" not in prompt.text


def test_the_previous_brief_is_shown_with_the_numbers_its_evidence_has_now(
    session, videodb
) -> None:
    store_meeting(session, until_s=200)
    brief.refresh(session.pk)
    decision = BriefItem.objects.filter(session=session, kind="decision").first()
    store_meeting(session, from_s=200)

    prompt = build(session, budget=settings.BRIEF_PROMPT_BUDGET_CHARS)

    cited = {e["id"] for e in decision.evidence}
    numbers = [s.number for s in prompt.sources if s.kind == "transcript" and s.ids[0] in cited]
    listed = f"- {decision.text} [{', '.join(str(n) for n in numbers)}]"
    assert "Previous brief:\n" in prompt.text and listed in prompt.text
    for line in prompt.text.split("Previous brief:\n")[1].split("\n\n")[0].splitlines():
        assert not SOURCE.match(line)  # only sources start with a number in brackets


def test_over_budget_it_sends_the_previous_brief_its_evidence_and_what_is_new(
    session, videodb
) -> None:
    store_meeting(session, until_s=300)
    brief.refresh(session.pk)
    previous = Brief.objects.get(session=session)
    store_meeting(session, from_s=300)
    whole = build(session, budget=10**6)
    budget = len(whole.text) - 1

    prompt = build(session, budget=budget)

    assert len(prompt.text) <= budget and prompt.partial
    assert len(prompt.sources) < len(whole.sources) * 0.6
    through = format_offset(previous.covered_through_ms - load(session).origin_ms)
    assert f"the previous brief summarises everything up to {through}." in prompt.text
    new = [s for s in prompt.sources if s.start_ms > previous.covered_through_ms]
    assert new and len(new) == len(
        [s for s in whole.sources if s.start_ms > previous.covered_through_ms]
    )
    cited = {
        (e["kind"], e["id"]) for i in BriefItem.objects.filter(session=session) for e in i.evidence
    }
    old = {(s.kind, s.ids[0]) for s in prompt.sources if s.start_ms <= previous.covered_through_ms}
    assert old and old <= cited  # of the earlier part, only what the brief cites
    assert prompt.cut == 0


def test_when_even_that_is_too_long_the_oldest_new_sources_are_left_out_and_counted(
    session,
) -> None:
    store_meeting(session)
    whole = build(session, budget=10**6)
    budget = len(whole.text) // 3

    prompt = build(session, budget=budget)

    assert len(prompt.text) <= budget < len(whole.text)
    assert prompt.cut > 0 and not prompt.partial
    assert f"{prompt.cut} of the oldest new sources were left out" in prompt.text
    assert prompt.sources[-1].text == whole.sources[-1].text  # the latest are kept
    assert len(prompt.sources) == len(whole.sources) - prompt.cut
    assert prompt.covered_from_ms == whole.sources[prompt.cut].start_ms


def test_a_long_meeting_s_briefs_stay_within_the_budget(session, videodb, settings) -> None:
    settings.BRIEF_PROMPT_BUDGET_CHARS = 5000
    settings.BRIEF_MIN_NEW_CHARS = 1
    for start in range(0, 400, 100):
        store_meeting(session, from_s=start, until_s=start + 100)
        assert brief.refresh(session.pk) == "made"
    sizes = list(Brief.objects.filter(session=session).values_list("prompt_bytes", flat=True))
    assert len(sizes) == 4 and max(sizes) <= 5000 + 200  # bytes: a few characters are wider
    assert BriefItem.objects.filter(session=session, kind="decision", is_current=True).count() >= 3
