"""What a web process remembers of deliveries it has seen stored: only the exact call it
saw (secret, session, key), for a while, and a bounded number of them."""

from __future__ import annotations

import pytest

from sessions_app.capture import repeats


def test_only_the_same_secret_session_and_key_are_known() -> None:
    repeats.remember("secret-a", "cap-1", "event:evt-1")

    assert repeats.known("secret-a", "cap-1", "event:evt-1")
    assert not repeats.known("secret-b", "cap-1", "event:evt-1")
    assert not repeats.known("secret-a", "cap-2", "event:evt-1")
    assert not repeats.known("secret-a", "cap-1", "event:evt-2")


def test_a_delivery_is_forgotten_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repeats, "TTL_SECONDS", -1.0)  # every entry is already too old
    repeats.remember("secret-a", "cap-1", "event:evt-old")

    assert not repeats.known("secret-a", "cap-1", "event:evt-old")


def test_past_the_bound_the_least_recently_stored_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(repeats, "MAX_ENTRIES", 2)
    for n in range(3):
        repeats.remember("secret-a", "cap-1", f"event:bound-{n}")

    assert [repeats.known("secret-a", "cap-1", f"event:bound-{n}") for n in range(3)] == [
        False,
        True,
        True,
    ]
