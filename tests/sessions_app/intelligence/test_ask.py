"""Asking a meeting: retrieval over the stored record, VideoDB's answer (the emulator, through
the real SDK) checked against what was sent, and every outcome stored and pushed; "Not
discussed" is never made up, and VideoDB failing never loses the question."""

from __future__ import annotations

import pytest

from sessions_app.intelligence import ask
from sessions_app.live import broadcast
from sessions_app.models import CaptureSession, Question
from sessions_app.viewers.access import Asker
from tests.sessions_app.conftest import say
from tests.sessions_app.watching import GroupWatch

pytestmark = pytest.mark.django_db

GENERATE = "POST collection/default/generate/text"


@pytest.fixture
def said(meeting, mic, system_audio) -> dict:
    """A short pricing conversation, stored final on two channels."""
    return {
        "welcome": say(mic, "Welcome everyone, let's start with the roadmap.", 1000, final=True),
        "objection": say(
            system_audio, "The enterprise tier costs too much for us.", 5000, final=True
        ),
        "decision": say(mic, "We decided to offer a ten percent discount.", 9000, final=True),
        "quote": say(system_audio, "Great, send the quote by Friday.", 13000, final=True),
        "budget": say(mic, "Our travel budget is unchanged this year.", 60000, final=True),
    }


@pytest.fixture
def owner_asks(owner):
    return Asker(owner, None)


def generate_calls(videodb) -> int:
    return videodb.control.request_counts().get(GENERATE, 0)


def test_a_question_about_something_said_is_answered_citing_that_line(
    videodb, meeting, said, owner_asks
) -> None:
    question = ask.ask(meeting, "What discount did we decide on?", owner_asks)

    question.refresh_from_db()
    assert question.outcome == Question.Outcome.ANSWERED
    assert "ten percent discount" in question.answer
    assert question.evidence == [{"kind": "transcript", "id": said["decision"].pk}]
    assert question.asked_by_id == owner_asks.user.pk and question.share_link is None
    assert question.model_name == "basic" and question.prompt_version == ask.PROMPT_VERSION
    assert question.answered_at is not None and question.error == ""
    assert generate_calls(videodb) == 1


def test_the_lines_sent_are_the_hits_with_their_neighbours_numbered_in_time_order(
    videodb, meeting, said
) -> None:
    # "discount" and "quote": a partial match still finds each line; the budget line, said
    # long after, is neither a hit nor its context.
    retrieved = ask.retrieve(meeting, "Was a discount or a quote mentioned?")

    assert retrieved.hits == 2
    assert [s.number for s in retrieved.sources] == [1, 2, 3]
    assert [s.ids[0] for s in retrieved.sources] == [
        said["objection"].pk,
        said["decision"].pk,
        said["quote"].pk,
    ]
    prompt = ask.prompt(meeting, "Was a\n[9] discount\nmentioned?", retrieved.sources)
    assert "[2] 00:08 Host: We decided to offer a ten percent discount." in prompt
    # The question stays on its one line: it cannot add a numbered line of its own.
    assert prompt.rstrip().endswith("Question: Was a [9] discount mentioned?")
    assert "\n[9]" not in prompt


def test_an_unrelated_question_is_not_discussed_without_asking_the_model(
    videodb, meeting, said, owner_asks
) -> None:
    question = ask.ask(meeting, "What is the weather like in Lisbon?", owner_asks)

    question.refresh_from_db()
    assert question.outcome == Question.Outcome.NOT_DISCUSSED
    assert question.answer == ask.NOT_DISCUSSED and question.evidence == []
    assert generate_calls(videodb) == 0


def test_lines_that_do_not_answer_it_make_the_model_say_not_discussed(
    videodb, meeting, said, owner_asks
) -> None:
    # Lines share words with it, so the model is asked; none of them answers it.
    question = ask.ask(meeting, "Did legal approve the enterprise tier discount?", owner_asks)

    question.refresh_from_db()
    assert generate_calls(videodb) == 1
    assert question.outcome == Question.Outcome.NOT_DISCUSSED
    assert question.evidence == [] and question.answer == ask.NOT_DISCUSSED


def test_citations_never_sent_are_dropped_and_nothing_is_made_up(
    videodb, meeting, said, owner_asks
) -> None:
    videodb.control.inject_generation_fault("bad_citations")

    question = ask.ask(meeting, "What discount did we decide on?", owner_asks)

    question.refresh_from_db()
    assert question.outcome == Question.Outcome.NOT_DISCUSSED
    assert question.evidence == []


@pytest.mark.parametrize(
    ("mode", "status", "reason"),
    [
        ("error", 500, "injected generation fault"),
        ("nonsense", None, "VideoDB's answer was not usable"),
        ("malformed", None, "VideoDB's answer was not usable"),
    ],
)
def test_videodb_failing_or_answering_nonsense_stores_the_question_as_failed(
    videodb, meeting, said, owner_asks, mode, status, reason
) -> None:
    videodb.control.inject_generation_fault(mode, status=status)

    question = ask.ask(meeting, "What discount did we decide on?", owner_asks)

    stored = Question.objects.get(pk=question.pk)
    assert stored.question == "What discount did we decide on?"
    assert stored.outcome == Question.Outcome.FAILED
    assert reason in stored.error
    assert stored.answer == "" and stored.evidence == []


def test_videodb_answering_too_late_fails_the_question_in_time(
    videodb, settings, meeting, said, owner_asks
) -> None:
    settings.ASK_DEADLINE_SECONDS = 0.5
    videodb.control.inject_generation_fault("slow", delay=2)

    question = ask.ask(meeting, "What discount did we decide on?", owner_asks)

    question.refresh_from_db()
    assert question.outcome == Question.Outcome.FAILED
    assert question.error == "VideoDB did not answer in time."


class TestRefusals:
    def test_an_empty_question_is_refused(self) -> None:
        with pytest.raises(ask.Refused, match=r"Type a question\.") as info:
            ask.clean("   \n ")
        assert info.value.status == 400

    def test_a_question_over_the_limit_is_refused_naming_it(self) -> None:
        assert ask.clean("x" * Question.MAX_LENGTH) == "x" * Question.MAX_LENGTH
        with pytest.raises(ask.Refused, match="at most 500 characters; this one has 501"):
            ask.clean("x" * (Question.MAX_LENGTH + 1))

    def test_a_user_asking_too_often_is_refused_across_sessions(
        self, settings, make_session, meeting, owner, owner_asks
    ) -> None:
        settings.ASK_PER_MINUTE = 2
        other = make_session(owner)
        Question.objects.create(session=meeting, asked_by=owner, question="one")
        Question.objects.create(session=other, asked_by=owner, question="two")

        with pytest.raises(ask.Refused) as info:
            ask.ask(meeting, "three?", owner_asks)
        assert info.value.status == 429
        assert info.value.message == "You asked 2 questions in the last minute; wait a moment."
        assert Question.objects.count() == 2

    def test_guests_are_limited_per_share_link(self, settings, meeting, share_link) -> None:
        settings.ASK_PER_MINUTE = 1
        Question.objects.create(session=meeting, share_link=share_link, question="one")

        with pytest.raises(ask.Refused, match="You asked 1 question in the last minute"):
            ask.ask(meeting, "two?", Asker(None, share_link))


def test_the_question_and_its_answer_are_pushed_to_the_sessions_pages_and_replayed(
    videodb, meeting, said, owner_asks, django_capture_on_commit_callbacks
) -> None:
    before = CaptureSession.objects.get(pk=meeting.pk).last_seq
    with GroupWatch(meeting.pk) as watch:
        with django_capture_on_commit_callbacks(execute=True):
            question = ask.ask(meeting, "What discount did we decide on?", owner_asks)
        asked, answered = watch.received()

    assert before < asked["seq"] < answered["seq"] == question.seq
    assert f'id="q-{question.pk}"' in asked["html"] and "Being answered" in asked["html"]
    assert 'hx-swap-oob="true"' in answered["html"]
    assert "ten percent discount" in answered["html"]
    # The citation opens the line: here on the live page, or on the history page at it.
    decision = said["decision"]
    assert f'data-moment="seg-{decision.pk}"' in answered["html"]
    assert f"?at={decision.start_ms}#line-{decision.pk}" in answered["html"]

    (replayed,) = [m for m in broadcast.replay(meeting, before) if f"q-{question.pk}" in m["html"]]
    assert replayed["seq"] == question.seq
    snapshot = broadcast.snapshot(meeting)
    assert len(snapshot["questions"]) == 1 and "ten percent" in snapshot["questions"][0]
