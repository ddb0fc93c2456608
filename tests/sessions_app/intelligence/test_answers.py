"""The model's answer is checked, not trusted: only numbers that were sent count as evidence,
an item left without evidence is dropped, and an answer that is not a JSON object is refused."""

from __future__ import annotations

import pytest

from sessions_app.intelligence import answers
from sessions_app.intelligence.sources import Source

LINES = {
    1: "We ship on Friday and book a room for the launch.",
    2: "Yes, we ship on Friday; legal needs a call first.",
    3: "I will send the deck to Ana before Friday.",
}
SENT = {
    n: Source(n, "transcript", (100 + n,), 0, 0, 0, 0, "Ana", text) for n, text in LINES.items()
}
LISTS = {"decisions": False, "action_items": True}


def test_items_keep_only_the_numbers_that_were_sent() -> None:
    checked = answers.check(
        {"decisions": [{"text": "Ship on Friday", "evidence": [2, 9, 2, 1]}]}, SENT, LISTS
    )

    (item,) = checked.lists["decisions"]
    assert item.text == "Ship on Friday"
    assert [s.number for s in item.sources] == [1, 2]
    assert checked.dropped_citations == 1 and checked.dropped_items == 0


def test_an_item_left_without_evidence_is_dropped() -> None:
    checked = answers.check(
        {
            "decisions": [
                {"text": "Made up", "evidence": [7]},
                {"text": "Uncited"},
                {"text": "", "evidence": [1]},
                "not an object",
            ]
        },
        SENT,
        LISTS,
    )

    assert checked.lists["decisions"] == []
    assert checked.dropped_items == 4 and checked.dropped_citations == 1


def test_action_items_keep_owner_due_and_a_known_status() -> None:
    checked = answers.check(
        {
            "action_items": [
                {"text": "Send the deck", "owner": "Ana", "due": "Friday", "evidence": [3]},
                {"text": "Book a room", "status": "DONE", "evidence": ["[1]"]},
                {"text": "Call legal", "status": "someday", "evidence": 2.0},
            ]
        },
        SENT,
        LISTS,
    )

    deck, room, legal = checked.lists["action_items"]
    assert (deck.owner, deck.due, deck.status) == ("Ana", "Friday", "open")
    assert room.status == "done" and [s.number for s in room.sources] == [1]
    assert legal.status == "open" and [s.number for s in legal.sources] == [2]


def test_a_json_string_answer_is_parsed() -> None:
    checked = answers.check(
        '{"decisions": [{"text": "Ship on Friday", "evidence": [1]}]}', SENT, LISTS
    )
    assert [i.text for i in checked.lists["decisions"]] == ["Ship on Friday"]
    assert checked.lists["action_items"] == []


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("The meeting went well.", "not JSON"),
        ('{"decisions": [', "not JSON"),
        ([1, 2], "not an object"),
        (None, "not an object"),
        ({"decisions": "all of them"}, "expected a list"),
    ],
)
def test_a_malformed_answer_is_refused_with_a_reason(output, says) -> None:
    with pytest.raises(answers.AnswerError, match=says):
        answers.check(output, SENT, LISTS)


def test_model_text_is_bounded_and_whitespace_folded() -> None:
    checked = answers.check(
        {"decisions": [{"text": "ship\n\n friday " + "x" * 5000, "evidence": [1]}]}, SENT, LISTS
    )
    (item,) = checked.lists["decisions"]
    assert item.text.startswith("ship friday ") and len(item.text) == answers.MAX_ITEM_CHARS


class TestCheckAnswer:
    """A question's answer: ``{"answer": {text, evidence, discussed}}``."""

    def test_it_keeps_the_sent_numbers_and_drops_inline_markers_from_the_text(self) -> None:
        reply = answers.check_answer(
            {"answer": {"text": "Ship  on Friday [2], said Ana [1, 9].", "evidence": [2, 9, 1]}},
            SENT,
        )
        assert reply.text == "Ship on Friday, said Ana."
        assert [s.number for s in reply.sources] == [1, 2]
        assert reply.discussed and reply.dropped_citations == 1

    def test_not_discussed_is_read_as_said(self) -> None:
        reply = answers.check_answer(
            '{"answer": {"text": "Not discussed", "evidence": [], "discussed": false}}', SENT
        )
        assert (reply.discussed, reply.sources) == (False, ())

    @pytest.mark.parametrize(
        "output", [{"summary": []}, {"answer": "Friday"}, {"answer": [1]}, "prose", [1]]
    )
    def test_an_answer_without_an_answer_object_is_refused(self, output) -> None:
        with pytest.raises(answers.AnswerError):
            answers.check_answer(output, SENT)


def test_a_citation_that_says_nothing_the_item_says_is_dropped() -> None:
    checked = answers.check(
        {
            "decisions": [
                {"text": "Send the deck to Ana", "evidence": [1, 3]},
                {"text": "Hire a designer", "evidence": [2]},
            ]
        },
        SENT,
        LISTS,
    )

    (deck,) = checked.lists["decisions"]
    assert [s.number for s in deck.sources] == [3]  # 1 is about shipping and a room
    assert checked.dropped_citations == 2 and checked.dropped_items == 1


@pytest.mark.parametrize(
    ("item", "source", "supported"),
    [
        ("Ship on Friday", "We ship on Friday.", True),
        ("Send the pricing deck to Dana", "I'll send the deck today.", True),
        ("Book a room", "Can someone book a room?", True),
        ("Book a room", "Will do.", False),
        ("Prices rise in March", "Pricing goes up in March.", True),
    ],
)
def test_support_means_sharing_two_content_words_or_half_of_a_short_item(
    item, source, supported
) -> None:
    assert answers.supports(item, source) is supported
