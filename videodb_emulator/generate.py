"""What `generate_text` answers: the stand-in's brief as JSON or text, and the fault shapes.

Not a model. With numbered sources in the prompt it extracts a cited brief (`standin.py`);
without them it answers a short summary of the prompt itself, labelled as such.
"""

from __future__ import annotations

import json
from typing import Any

from .sources import Prompt, parse_prompt
from .standin import answer, brief

LABEL = "[videodb-emulator: deterministic extraction from numbered sources, not a language model]"
FALLBACK_LABEL = "[videodb-emulator: deterministic summary, not a language model]"
NONSENSE = (
    "Certainly! Meetings are like weather: sometimes sunny, sometimes cloudy. "
    "As a language model I find this one delightful. The end."
)
FAULT_SHAPES = ("malformed", "nonsense", "bad_citations")
_KEY_LINES = 3


def answer_json(prompt_text: str) -> dict[str, Any]:
    """The documented JSON shape, for any prompt."""
    prompt = parse_prompt(prompt_text)
    if prompt.sources:
        return {"emulated": True, "note": LABEL, "sources": len(prompt.sources), **brief(prompt)}
    return _fallback(prompt_text, prompt)


def _fallback(prompt_text: str, prompt: Prompt) -> dict[str, Any]:
    lines = [ln.strip(" -*\t") for ln in prompt_text.splitlines() if len(ln.strip(" -*\t")) > 3]
    described = (
        f"{FALLBACK_LABEL} A prompt of {prompt.words} words in {prompt.lines} lines, with no "
        "numbered sources ([n] lines), so nothing can be cited."
    )
    return {
        "emulated": True,
        "note": FALLBACK_LABEL,
        "sources": 0,
        "summary": [{"text": described, "evidence": []}]
        + [{"text": line[:200], "evidence": []} for line in lines[:_KEY_LINES]],
        "decisions": [],
        "action_items": [],
        "open_questions": [],
        "answer": answer(prompt),
    }


def _cites(item: dict[str, Any]) -> str:
    return f" [{', '.join(str(n) for n in item['evidence'])}]" if item["evidence"] else ""


def render_text(answer_: dict[str, Any]) -> str:
    """The same answer as plain text: one section per list, citations in brackets."""
    out = [answer_["note"]]
    sections = (
        ("Summary", "summary"),
        ("Decisions", "decisions"),
        ("Action items", "action_items"),
        ("Open questions", "open_questions"),
    )
    for title, key in sections:
        items = answer_[key]
        if not items and not answer_["sources"]:
            continue
        out.append(f"{title}:")
        for item in items:
            details = [f"{k}: {item[k]}" for k in ("owner", "due", "status") if item.get(k)]
            extra = f" ({'; '.join(details)})" if details else ""
            out.append(f"- {item['text']}{extra}{_cites(item)}")
        if not items:
            out.append("- none")
    if answer_["answer"] is not None:
        reply = answer_["answer"]
        out.append(f"Answer to {reply['question']!r}: {reply['text']}{_cites(reply)}")
    return "\n".join(out)


def _bad_citations(answer_: dict[str, Any]) -> dict[str, Any]:
    """The documented shape, but citing numbers that were never sent, and one uncited item."""
    spoiled = json.loads(json.dumps(answer_))
    invented = 1000 + answer_["sources"]
    for key in ("summary", "decisions", "action_items", "open_questions"):
        for item in spoiled[key]:
            item["evidence"] = [invented]
            invented += 1
    spoiled["decisions"].append({"text": "A decision nobody made.", "evidence": []})
    if spoiled["answer"] is not None:
        spoiled["answer"]["evidence"] = [invented]
    return spoiled


def generate_text(prompt: str, response_type: str, fault: str | None = None) -> Any:
    """``output`` for a generate_text call; ``fault`` is one of FAULT_SHAPES or None."""
    if fault == "nonsense":
        return NONSENSE
    answer_ = answer_json(prompt)
    if fault == "bad_citations":
        answer_ = _bad_citations(answer_)
    output: Any = answer_ if response_type == "json" else render_text(answer_)
    if fault == "malformed":
        text = output if isinstance(output, str) else json.dumps(output)
        return text[: max(1, len(text) // 2)]
    return output
