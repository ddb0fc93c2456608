"""Ground-truth labels of the meeting scripts, the scoring of found items against them, and
how much of the bundled meetings the generate_text stand-in recovers through the SDK."""

from __future__ import annotations

import pytest

from videodb_emulator.labels import score
from videodb_emulator.scripts import ScriptError, ScriptLibrary, parse_script

BUNDLED = ("product_planning", "sales_call", "incident_review")
LINES = [
    {"channel": "mic", "speaker": "Ann", "start": 1, "text": "Let's go with plan B."},
    {"channel": "system_audio", "speaker": "Bo", "start": 4, "text": "I'll write it up by Friday."},
    {"channel": "mic", "speaker": "Ann", "start": 8, "text": "Thanks, Bo."},
]


def _script(**labels):
    return parse_script({"duration": 20, "utterances": LINES, **labels}, name="labelled")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_meetings_label_their_decisions_action_items_and_open_questions(name):
    script = ScriptLibrary().get(name)
    truth = script.ground_truth
    assert 2 <= len(truth.decisions) <= 5
    assert 3 <= len(truth.action_items) <= 6
    assert len(truth.open_questions) >= 2
    speakers = {u.speaker for u in script.utterances}
    for label in (*truth.decisions, *truth.action_items, *truth.open_questions):
        assert label.text and label.lines
        for index, (start, end) in zip(label.lines, label.spans, strict=True):
            utterance = script.utterances[index]
            assert (utterance.start, utterance.end) == (start, end)
    assert all(item.owner in speakers for item in truth.action_items)
    assert script.summary()["ground_truth"] == truth.counts()


def test_open_question_labels_point_at_lines_that_ask_something():
    for name in BUNDLED:
        script = ScriptLibrary().get(name)
        for label in script.ground_truth.open_questions:
            assert any("?" in script.utterances[i].text for i in label.lines), label


def test_labels_name_lines_by_start_time_and_keep_owner_and_due():
    script = _script(
        decisions=[{"text": "Plan B.", "at": [1.0]}],
        action_items=[{"text": "Write it up.", "owner": "Bo", "due": "Friday", "at": [4, 1]}],
    )
    (decision,) = script.ground_truth.decisions
    (action,) = script.ground_truth.action_items
    assert decision.lines == (0,) and decision.spans == ((1.0, script.utterances[0].end),)
    assert action.lines == (0, 1) and (action.owner, action.due) == ("Bo", "Friday")
    assert script.ground_truth.open_questions == ()


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (
            {"decisions": [{"text": "x", "at": [2.0]}]},
            "decisions[0]: 'at' 2.0 is not the start of any utterance (nearest: 1.0 Ann:",
        ),
        ({"decisions": [{"text": "x"}]}, "decisions[0]: 'at' is required"),
        ({"decisions": [{"text": "x", "at": []}]}, "'at' is required"),
        ({"decisions": [{"text": "x", "at": ["1"]}]}, "must list utterance start times"),
        ({"decisions": [{"text": "x", "at": [1, 1.0]}]}, "names the same utterance twice"),
        ({"decisions": [{"text": "", "at": [1]}]}, "'text' must be a non-empty string"),
        ({"decisions": [{"text": "x", "at": [1], "owner": "Ann"}]}, "unknown key(s): owner"),
        ({"decisions": {"text": "x"}}, "decisions: must be a list of tables"),
        (
            {"action_items": [{"text": "x", "at": [4], "owner": "Cy"}]},
            "action_items[0]: owner 'Cy' says nothing in the script (Ann, Bo)",
        ),
        ({"action_items": [{"text": "x", "at": [4], "due": 3}]}, "'due' must be a non-empty"),
        ({"open_questions": [{"text": "x", "at": [9]}]}, "open_questions[0]: 'at' 9"),
    ],
)
def test_a_label_that_names_no_line_is_an_error_saying_which(labels, problem):
    with pytest.raises(ScriptError) as info:
        _script(**labels)
    assert problem in str(info.value)


def test_scoring_pairs_found_items_with_labels_one_to_one():
    script = _script(
        action_items=[
            {"text": "Plan.", "at": [1]},
            {"text": "Write-up.", "owner": "Bo", "at": [4]},
        ]
    )
    labels = script.ground_truth.action_items
    # Two items on the same line can match one label only; one item cites no labelled line.
    result = score(labels, [[4.2], [4.0, 8.0], [15.0]])
    assert (result.labels, result.found, len(result.pairs)) == (2, 3, 1)
    assert result.recall == 0.5 and result.precision == pytest.approx(1 / 3)
    both = score(labels, [[1.0, 4.0], [4.0]])
    assert both.pairs == ((0, 0), (1, 1)) and both.recall == both.precision == 1.0
    assert score((), []).recall == score((), []).precision == 1.0


def _as_sources(script) -> str:
    lines = [
        f"[{n}] {int(u.start) // 60:02d}:{int(u.start) % 60:02d} {u.speaker}: {u.text}"
        for n, u in enumerate(script.utterances, 1)
    ]
    return "Keep a brief of this meeting.\n" + "\n".join(lines)


@pytest.mark.parametrize("name", BUNDLED)
def test_the_stand_in_recovers_each_bundled_meetings_labels_from_its_final_lines(conn, name):
    script = ScriptLibrary().get(name)
    brief = conn.get_collection().generate_text(_as_sources(script), response_type="json")
    brief = brief["output"]

    def times(item):
        return [script.utterances[n - 1].start for n in item["evidence"]]

    figures = {}
    for kind in ("decisions", "action_items", "open_questions"):
        found = brief[kind]
        result = score(getattr(script.ground_truth, kind), [times(item) for item in found])
        figures[kind] = result
        assert result.recall >= 0.8, (kind, result)
        assert result.precision >= 0.6, (kind, result)
    actions = script.ground_truth.action_items
    pairs = figures["action_items"].pairs
    owners = sum(actions[li].owner == brief["action_items"][fi]["owner"] for li, fi in pairs)
    assert owners >= len(pairs) - 1
    print(
        name,
        *(f"{k}: recall {r.recall:.2f} precision {r.precision:.2f}" for k, r in figures.items()),
        f"owners right {owners}/{len(pairs)}",
        sep=" | ",
    )
