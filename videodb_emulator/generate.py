"""Deterministic stand-in for `generate_text`: it summarises the prompt, it is not a model."""

from __future__ import annotations

import re
from typing import Any

LABEL = "[videodb-emulator: deterministic summary, not a language model]"
_ACTION_HINTS = ("action", "todo", "to-do", "follow up", "follow-up", "will ", "owner", "by friday")
_DECISION_HINTS = ("decid", "agreed", "approve", "we'll go with", "decision")


def _lines(prompt: str) -> list[str]:
    parts = re.split(r"[\n\r]+|(?<=[.!?])\s+", prompt)
    return [p.strip(" -*\t") for p in parts if len(p.strip(" -*\t")) > 3]


def generate_text(prompt: str, response_type: str) -> Any:
    lines = _lines(prompt)
    words = len(prompt.split())
    key_points = lines[:5]
    decisions = [line for line in lines if any(h in line.lower() for h in _DECISION_HINTS)][:5]
    actions = [line for line in lines if any(h in line.lower() for h in _ACTION_HINTS)][:5]
    if response_type == "json":
        return {
            "emulated": True,
            "note": LABEL,
            "summary": f"Prompt of {words} words, {len(lines)} lines.",
            "key_points": key_points,
            "decisions": decisions,
            "action_items": actions,
        }
    out = [LABEL, f"Summary of a {words}-word prompt ({len(lines)} lines)."]
    if key_points:
        out.append("Key points:")
        out.extend(f"- {p[:200]}" for p in key_points)
    if decisions:
        out.append("Decisions:")
        out.extend(f"- {p[:200]}" for p in decisions)
    if actions:
        out.append("Action items:")
        out.extend(f"- {p[:200]}" for p in actions)
    return "\n".join(out)
