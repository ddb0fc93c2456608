"""The gateway's text generation against the emulator, through the real SDK: the output comes
back parsed for JSON, and VideoDB's failures arrive as gateway errors."""

from __future__ import annotations

import pytest

from sessions_app import gateway

PROMPT = "\n".join(
    [
        "Answer in JSON.",
        "[1] 00:01 Ana: We decided to launch on March 3.",
        "[2] 00:05 Ben: I'll send the pricing deck by Friday.",
    ]
)


def test_a_json_answer_comes_back_as_an_object_with_the_model_named(videodb) -> None:
    generated = gateway.generate_text(PROMPT, model_name="basic")

    assert generated.model_name == "basic"
    assert isinstance(generated.output, dict)
    assert [d["evidence"] for d in generated.output["decisions"]] == [[1]]
    assert generated.output["action_items"][0]["owner"] == "Ben"


def test_a_text_answer_comes_back_as_text(videodb) -> None:
    generated = gateway.generate_text(PROMPT, model_name="pro", response_type="text")
    assert isinstance(generated.output, str) and "launch on March 3" in generated.output


def test_an_unknown_model_is_a_permanent_error(videodb) -> None:
    with pytest.raises(gateway.PermanentGatewayError, match="generate text"):
        gateway.generate_text(PROMPT, model_name="no-such-model")


def test_a_failing_generation_is_retryable(videodb) -> None:
    videodb.control.inject_generation_fault("error", count=3, status=503)
    with pytest.raises(gateway.RetryableGatewayError):
        gateway.generate_text(PROMPT, model_name="basic")
