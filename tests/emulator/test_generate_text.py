"""generate_text through the real SDK: answer shapes, the numbered-sources stand-in, the
large-prompt upload path, bad input and injected generation faults."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from videodb.exceptions import InvalidRequestError, VideodbError

from videodb_emulator.generate import FALLBACK_LABEL, LABEL, NONSENSE
from videodb_emulator.standin import NOT_DISCUSSED

MEETING = """You are a meeting assistant. Answer in JSON with summary, decisions, action_items,
open_questions; cite the source numbers.

Sources:
[1] 00:00:05 Priya: Morning all. Today we settle the launch plan and who does what.
[2] 00:00:20 Jonas: The pricing page still shows the old enterprise tiers and the wrong currency.
[3] 00:00:41 Priya: We decided to launch the new pricing on March 3, after the billing freeze.
[4] 00:01:02 Priya: Jonas, can you update the pricing page by Friday?
[5] 00:01:10 Jonas: Sure, I'll take it.
[6] 00:01:30 Lena: I'll send the partner email tomorrow.
[7] 00:01:52 Lena: Who signs off the legal wording for the partner email?
[8] 00:02:05 Jonas: The screenshots in the help centre need new captions as well.
[9] 00:02:12 screen: Slide "Launch checklist" with five unchecked boxes.
[10] 00:02:30 Priya: Please archive the old tier FAQ.
[11] 00:02:50 Lena: Can we keep the annual discount at fifteen percent?
[12] 00:03:01 Priya: Yes, let's go with fifteen percent for the annual discount.
"""


def _post(emu, path: str, body: bytes | None, *, key: str | None = None, method: str = "POST"):
    req = urllib.request.Request(  # noqa: S310 - the local emulator
        f"{emu.base_url}/{path}",
        data=body,
        method=method,
        headers={"x-access-token": key or emu.api_key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _generate(emu, body: dict) -> tuple[int, dict]:
    return _post(emu, "collection/default/generate/text", json.dumps(body).encode())


def test_json_answers_the_documented_shape_in_the_sdks_output_field(conn):
    result = conn.get_collection().generate_text(MEETING, model_name="pro", response_type="json")
    assert set(result) == {"output", "response_type", "model_name", "emulated"}
    assert (result["response_type"], result["model_name"], result["emulated"]) == (
        "json",
        "pro",
        True,
    )
    brief = result["output"]
    assert set(brief) == {
        "emulated",
        "note",
        "sources",
        "summary",
        "decisions",
        "action_items",
        "open_questions",
        "answer",
    }
    assert brief["emulated"] is True and brief["note"] == LABEL and brief["sources"] == 12
    assert brief["summary"] and all(item["evidence"] for item in brief["summary"])
    assert brief["answer"] is None


def test_text_answers_a_labelled_plain_text_brief_with_bracketed_citations(conn):
    text = conn.get_collection().generate_text(MEETING)["output"]
    assert isinstance(text, str) and text.startswith(LABEL)
    assert "Decisions:\n- We decided to launch the new pricing on March 3" in text
    assert "(owner: Jonas; due: Friday; status: open) [4, 5]" in text


def test_same_prompt_same_answer(conn):
    coll = conn.get_collection()
    first = coll.generate_text(MEETING, response_type="json")
    assert coll.generate_text(MEETING, response_type="json") == first
    assert coll.generate_text(MEETING) == coll.generate_text(MEETING)


def test_decisions_are_cited_decision_lines(conn):
    brief = conn.get_collection().generate_text(MEETING, response_type="json")["output"]
    assert brief["decisions"] == [
        {
            "text": "We decided to launch the new pricing on March 3, after the billing freeze.",
            "evidence": [3],
        },
        {
            "text": "Yes, let's go with fifteen percent for the annual discount.",
            "evidence": [12],
        },
    ]


def test_action_items_carry_owner_due_and_the_reply_that_took_them_on(conn):
    brief = conn.get_collection().generate_text(MEETING, response_type="json")["output"]
    assert brief["action_items"] == [
        {
            "text": "Jonas, can you update the pricing page by Friday?",
            "owner": "Jonas",
            "due": "Friday",
            "status": "open",
            "evidence": [4, 5],
        },
        {
            "text": "I'll send the partner email tomorrow.",
            "owner": "Lena",
            "due": "tomorrow",
            "status": "open",
            "evidence": [6],
        },
        {
            "text": "Please archive the old tier FAQ.",
            "owner": None,
            "due": None,
            "status": "open",
            "evidence": [10],
        },
    ]


def test_a_question_nobody_answers_is_open_and_an_answered_one_is_not(conn):
    brief = conn.get_collection().generate_text(MEETING, response_type="json")["output"]
    # [11] is answered by the next speaker ("Yes, ..."); [7] by nobody.
    assert brief["open_questions"] == [
        {"text": "Who signs off the legal wording for the partner email?", "evidence": [7]}
    ]


def test_naming_the_owner_and_replying_work_across_sources_and_screen_lines(conn):
    prompt = (
        "[1] Nadia: Action item two: add a runbook link to the checkout alert.\n"
        "[2] Nadia: Tomas?\n"
        "[3] screen: Alert settings page.\n"
        "[4] Tomas: Yes, I'll take it.\n"
        "[5] Nadia: Action item three: refresh the staging data.\n"
        "[6] Yuki: Will do."
    )
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    assert [(i["owner"], i["evidence"]) for i in brief["action_items"]] == [
        ("Tomas", [1, 2, 4]),
        ("Yuki", [5, 6]),
    ]


def test_negated_or_past_cues_state_nothing_and_restated_decisions_merge(conn):
    prompt = (
        "[1] Ann: As long as the stretch goal is not secretly committed, fine.\n"
        "[2] Bo: It went smoothly once we decided to roll back.\n"
        "[3] Ann: We decided to ship the annual plan in May.\n"
        "[4] Bo: Agreed, we ship the annual plan in May."
    )
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    assert brief["decisions"] == [
        {"text": "We decided to ship the annual plan in May.", "evidence": [3, 4]}
    ]


def test_a_later_line_saying_it_is_done_closes_an_action_item(conn):
    prompt = (
        "[1] Ann: I'll send the security questionnaire to Kofi.\n"
        "[2] Ben: Great.\n"
        "[3] Ann: Update: the security questionnaire is already sent to Kofi."
    )
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    (item,) = brief["action_items"]
    assert (item["owner"], item["status"], item["evidence"]) == ("Ann", "done", [1, 3])


def test_a_question_about_the_meeting_is_answered_from_the_best_matching_sources(conn):
    prompt = MEETING + "\nQuestion: When does the new pricing launch?"
    answer = conn.get_collection().generate_text(prompt, response_type="json")["output"]["answer"]
    assert answer["discussed"] is True
    assert answer["question"] == "When does the new pricing launch?"
    assert answer["evidence"][0] == 3
    assert "March 3" in answer["text"]


def test_a_question_nothing_matches_is_not_discussed_and_cites_nothing(conn):
    prompt = MEETING + "\nQuestion: What did we say about the office party budget?"
    answer = conn.get_collection().generate_text(prompt, response_type="json")["output"]["answer"]
    assert answer == {
        "question": "What did we say about the office party budget?",
        "text": NOT_DISCUSSED,
        "evidence": [],
        "discussed": False,
    }


def test_source_lines_may_omit_times_and_speakers_and_carry_kinds(conn):
    prompt = (
        "[7] We decided to freeze the schema.\n"
        "[8] 12:30-12:45 screen: Pricing page: three tiers.\n"
        "[9] 1:02:03 Ana Lima (mic): Ana Lima here. Bo, could you rerun the export by tomorrow?\n"
        "[10] Bo: On it.\n"
        "[7] A repeated number keeps its first line, so this is ignored: we decided nothing.\n"
        "  [not a number] this line is not a source\n"
    )
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    assert brief["sources"] == 4
    assert brief["decisions"] == [{"text": "We decided to freeze the schema.", "evidence": [7]}]
    (item,) = brief["action_items"]
    assert (item["owner"], item["due"], item["evidence"]) == ("Bo", "tomorrow", [9])


def test_without_numbered_sources_it_answers_a_labelled_uncited_summary(conn):
    prompt = "Summarise.\nWe decided to ship on Friday.\nAlex will update the pricing page."
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    assert brief["note"] == FALLBACK_LABEL and brief["sources"] == 0
    assert brief["decisions"] == brief["action_items"] == brief["open_questions"] == []
    assert brief["summary"][0]["text"].startswith(FALLBACK_LABEL)
    assert all(item["evidence"] == [] for item in brief["summary"])
    text = conn.get_collection().generate_text(prompt)["output"]
    assert text.startswith(FALLBACK_LABEL) and "- We decided to ship on Friday." in text


def test_a_prompt_over_the_sdks_inline_limit_goes_through_the_upload_path(emu, conn):
    filler = "\n".join(
        f"[{n}] 00:{n // 60 % 60:02d}:{n % 60:02d} Carol: status line {n} about the rollout plan"
        for n in range(100, 6100)
    )
    prompt = MEETING + filler  # about 370 KB: SDK 0.5.1 uploads anything over 250 KB
    brief = conn.get_collection().generate_text(prompt, response_type="json")["output"]
    assert brief["sources"] == 6012
    assert brief["decisions"][0]["evidence"] == [3]
    counts = emu.control.request_counts()
    assert counts["GET collection/default/upload_url"] == 1
    assert counts["POST collection/default/generate/text"] == 1


def test_a_prompt_over_one_megabyte_is_refused_at_upload_with_413(conn):
    with pytest.raises(VideodbError, match="413"):
        conn.get_collection().generate_text("[1] Ann: hello\n" * 80_000)


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"prompt": ""}, 400, "'prompt' must be a non-empty string, got an empty string"),
        ({"prompt": "   "}, 400, "'prompt' must be a non-empty string"),
        ({"prompt": "x", "model_name": "gpt-4"}, 400, "'model_name' must be one of basic, pro"),
        ({"prompt": "x", "response_type": "xml"}, 400, "'response_type' must be 'text' or 'json'"),
        ({"prompt": "x", "sandbox_id": "sb-1"}, 404, "sandbox 'sb-1' not found"),
        ({"prompt": "x", "max_tokens": 0}, 400, "'max_tokens' must be >= 1"),
        ({"prompt": "x", "temperature": 3}, 400, "'temperature' must be between 0 and 2"),
        ({"prompt": "x", "model_config": "fast"}, 400, "'model_config' must be an object"),
        ({"prompt": "x", "callback_url": "https://x.test/cb"}, 400, "'callback_url' is not"),
    ],
)
def test_bad_arguments_through_the_sdk_are_4xx_with_a_message(conn, kwargs, status, message):
    with pytest.raises(InvalidRequestError) as info:
        conn.get_collection().generate_text(**kwargs)
    assert info.value.response.status_code == status
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "'prompt' is required"),
        ({"prompt": 5}, 400, "'prompt' must be a non-empty string, got int"),
        ({"prompt": ["a"]}, 400, "got list"),
        ({"prompt": "x", "prompt_url": "http://x"}, 400, "either 'prompt' or 'prompt_url'"),
        ({"prompt_url": 7}, 400, "'prompt_url' must be a string"),
        ({"prompt_url": "https://example.com/p.txt"}, 400, "minted by this emulator"),
        ({"prompt_url": "http://h/_upload/upl-nope"}, 404, "unknown or has expired"),
        ({"prompt": "x", "model_name": 3}, 400, "'model_name' must be one of"),
        ({"prompt": "x", "temperature": "hot"}, 400, "'temperature' must be a number"),
        ({"prompt": "x" * (1 << 20) + "y"}, 413, "the emulator accepts at most 1,048,576"),
    ],
)
def test_bad_bodies_are_4xx_with_a_message(emu, body, status, message):
    code, payload = _generate(emu, body)
    assert code == status
    assert payload["success"] is False and message in payload["message"]


def test_upload_urls_take_one_upload_and_refuse_misuse(emu, conn):
    minted = conn.get("collection/default/upload_url", params={"name": "p.txt"})
    url = minted["upload_url"]
    path = url.split("/", 3)[3]
    code, payload = _generate(emu, {"prompt_url": url})
    assert (code, payload["message"]) == (400, "nothing was uploaded to 'prompt_url'")
    assert _post(emu, path, b"\xff\xfe not utf-8", key="")[0] == 200
    code, payload = _generate(emu, {"prompt_url": url})
    assert (code, payload["message"]) == (400, "the uploaded prompt is not UTF-8 text")
    code, payload = _post(emu, path, b"again", key="")
    assert (code, payload["message"]) == (409, "this upload URL was already used")
    assert _post(emu, "_upload/upl-unknown", b"x", key="")[0] == 404


def test_a_malformed_multipart_upload_is_a_400(emu, conn):
    url = conn.get("collection/default/upload_url")["upload_url"]
    req = urllib.request.Request(  # noqa: S310 - the local emulator
        url,
        data=b"--zz\r\nContent-Disposition: form-data\r\n\r\nno closing boundary",
        method="POST",
        headers={"Content-Type": "multipart/form-data; boundary=yy"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert info.value.code == 400
    assert "multipart" in json.loads(info.value.read())["message"]


def test_generation_errors_are_injected_with_the_chosen_status(emu, conn):
    coll = conn.get_collection()
    emu.control.inject_generation_fault("error", count=2, status=500)
    for _ in range(2):
        with pytest.raises(InvalidRequestError, match="injected generation fault") as info:
            coll.generate_text(MEETING, response_type="json")
        assert info.value.response.status_code == 500
    assert coll.generate_text(MEETING, response_type="json")["output"]["sources"] == 12
    emu.control.inject_generation_fault("error", status=429)
    with pytest.raises(InvalidRequestError) as info:
        coll.generate_text(MEETING)
    assert info.value.response.status_code == 429
    assert emu.control.state()["generate_faults"]["injected"] == 3


def test_generation_faults_leave_other_calls_alone_and_bad_input_still_400s(emu, conn):
    emu.control.inject_generation_fault("error", count=1)
    assert conn.list_capture_sessions() == []
    with pytest.raises(InvalidRequestError) as info:
        conn.get_collection().generate_text("")
    assert info.value.response.status_code == 400
    assert emu.control.state()["generate_faults"]["count"] == 1


def test_slow_generation_waits_before_answering(emu, conn):
    emu.control.inject_generation_fault("slow", delay=0.5)
    started = time.monotonic()
    conn.get_collection().generate_text(MEETING)
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    conn.get_collection().generate_text(MEETING)
    assert time.monotonic() - started < 0.4


def test_malformed_json_is_the_answer_cut_in_half(emu, conn):
    emu.control.inject_generation_fault("malformed")
    output = conn.get_collection().generate_text(MEETING, response_type="json")["output"]
    assert isinstance(output, str) and output.startswith('{"emulated": true')
    with pytest.raises(json.JSONDecodeError):
        json.loads(output)


def test_nonsense_is_prose_where_json_was_asked_for(emu, conn):
    emu.control.inject_generation_fault("nonsense", count=2)
    coll = conn.get_collection()
    assert coll.generate_text(MEETING, response_type="json")["output"] == NONSENSE
    assert coll.generate_text(MEETING)["output"] == NONSENSE


def test_bad_citations_cite_sources_never_sent_and_add_an_uncited_item(emu, conn):
    emu.control.inject_generation_fault("bad_citations")
    brief = conn.get_collection().generate_text(MEETING, response_type="json")["output"]
    cited = [
        n
        for key in ("summary", "decisions", "action_items")
        for i in brief[key]
        for n in i["evidence"]
    ]
    assert cited and all(n > 12 for n in cited)
    assert {"text": "A decision nobody made.", "evidence": []} in brief["decisions"]


def test_generation_faults_can_be_cleared_and_are_validated(emu, conn):
    emu.control.inject_generation_fault("nonsense", count=5)
    assert emu.control.clear_generation_faults()["count"] == 0
    assert conn.get_collection().generate_text(MEETING)["output"].startswith(LABEL)
    for body, message in [
        ({"mode": "explode"}, "'mode' must be one of error, slow, malformed"),
        ({"mode": "error", "status": 404}, "'status' must be 429 or a 5xx code"),
        ({"mode": "slow", "delay": 500}, "'delay' must be <= 120"),
        ({"mode": "error", "count": 0}, "'count' must be >= 1"),
    ]:
        code, payload = _post(emu, "_emulator/faults/generate", json.dumps(body).encode())
        assert code == 400 and message in payload["message"]


def test_the_global_rest_faults_cover_generate_text_too(emu, conn):
    emu.control.inject_faults(fail_count=1, status=500)
    with pytest.raises(InvalidRequestError, match="injected fault"):
        conn.get_collection().generate_text(MEETING)
