"""The timeline's axis: labelled at round times, fewer on a narrow screen."""

from __future__ import annotations

import pytest

from sessions_app.history import timeline

MINUTE = 60_000


@pytest.mark.parametrize(
    ("duration_ms", "wide", "narrow"),
    [
        (6_600, 1_000, 2_000),  # the emulator's tiny meeting
        (47 * MINUTE, 5 * MINUTE, 15 * MINUTE),
        (30 * MINUTE, 5 * MINUTE, 10 * MINUTE),
        (3 * 60 * MINUTE, 20 * MINUTE, 60 * MINUTE),
        (9 * 60 * MINUTE, 60 * MINUTE, 3 * 60 * MINUTE),
    ],
)
def test_the_step_is_the_shortest_round_one_that_fits(duration_ms, wide, narrow):
    assert timeline.round_step(duration_ms, timeline.WIDE_STEPS) == wide
    assert timeline.round_step(duration_ms, timeline.NARROW_STEPS) == narrow


def test_ticks_fall_on_round_times_from_the_start_and_stay_inside_the_picture():
    ticks = timeline.ticks(47 * MINUTE, timeline.NARROW_STEPS)
    assert [t.label for t in ticks] == ["00:00", "15:00", "30:00", "45:00"]
    assert [t.anchor for t in ticks] == ["start", "middle", "middle", "end"]
    assert [round(t.x, 1) for t in ticks] == [0.0, 31.9, 63.8, 95.7]
    # Past the first hour the labels read as hours.
    assert timeline.ticks(3 * 60 * MINUTE, 4)[-1].label == "3:00:00"


def test_a_meeting_longer_than_every_round_step_is_labelled_in_whole_hours():
    step = timeline.round_step(50 * 60 * MINUTE, timeline.NARROW_STEPS)
    assert step % (60 * MINUTE) == 0 and 50 * 60 * MINUTE / step <= timeline.NARROW_STEPS
