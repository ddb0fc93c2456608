"""Repetition is shown once: an insight VideoDB reported on both channels and in the next
windows becomes one group citing every copy, an unchanged screen becomes one span, and the
groups are the same whatever order the copies arrive in, so every page agrees."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sessions_app.capture import handoff, lifecycle
from sessions_app.history import record, repeats
from sessions_app.live import recovery
from sessions_app.models import CaptureSession, Insight
from tests.sessions_app.conftest import note

MIN = 60_000
PRICING = "Pricing page: three tiers, Starter $12, Team $24, Enterprise $39 per seat per month."
FEATURES = "Pricing page scrolled to the Enterprise feature list: SSO, audit logs, data residency."
DECISION = "Decision: start with one hundred seats on Enterprise."


@dataclass(frozen=True)
class Item:
    id: int
    stream_id: int
    text: str
    start_ms: int
    end_ms: int
    speaker: str = "Me"


def item(pk: int, text: str, start_s: float, *, stream: int = 1, speaker: str = "Me") -> Item:
    start = int(start_s * 1000)
    return Item(pk, stream, text, start, start + 10_000, speaker)


def ids(groups: list[repeats.Group]) -> list[tuple[int, ...]]:
    return [group.ids for group in groups]


class TestSameText:
    def test_the_same_words_in_another_case_or_order_are_the_same(self) -> None:
        assert repeats.same_text(PRICING, PRICING.upper())
        assert repeats.same_text("Slide shows three tiers", "three tiers: slide shows")

    def test_a_model_rewording_an_unchanged_screen_is_the_same(self) -> None:
        assert repeats.same_text(
            "Pricing page showing three tiers", "The pricing page shows the three tiers"
        )
        assert repeats.same_text(PRICING, PRICING.replace(".", ", billed annually."))

    def test_another_screen_of_the_same_page_is_not(self) -> None:
        assert not repeats.same_text(PRICING, FEATURES)
        assert not repeats.same_text("Pricing page: Starter $12", "Pricing page: Enterprise $39")

    def test_text_with_no_content_word_is_the_same_only_as_itself(self) -> None:
        assert repeats.same_text("…", "…")
        assert not repeats.same_text("…", "—")
        assert not repeats.same_text("", "Slide")


class TestScreenSpans:
    def test_consecutive_descriptions_of_an_unchanged_screen_are_one_span(self) -> None:
        copies = [item(n, PRICING, 10 * n) for n in range(1, 8)]

        (span,) = repeats.screen_spans(copies)

        assert span.ids == tuple(range(1, 8))
        assert (span.id, span.text, span.count, span.repeated) == (1, PRICING, 7, 6)
        assert (span.start_ms, span.end_ms) == (10_000, 80_000)

    def test_a_screen_shown_again_later_is_a_new_span(self) -> None:
        screens = [
            item(1, PRICING, 10),
            item(2, PRICING, 20),
            item(3, FEATURES, 30),
            item(4, PRICING, 40),
        ]

        assert ids(repeats.screen_spans(screens)) == [(1, 2), (3,), (4,)]

    def test_descriptions_of_two_screens_never_join_and_interleave_in_time(self) -> None:
        items = [
            item(1, PRICING, 10, stream=1),
            item(2, PRICING, 10, stream=2),
            item(3, PRICING, 20, stream=1),
            item(4, FEATURES, 20, stream=2),
        ]

        assert ids(repeats.screen_spans(items)) == [(1, 3), (2,), (4,)]

    def test_a_copy_that_arrives_late_takes_its_place_in_time(self) -> None:
        # The backfill stores 9 (at 20 s) after 3 (at 30 s) was stored live.
        arrived = [item(1, PRICING, 10), item(3, PRICING, 30), item(9, PRICING, 20)]

        (span,) = repeats.screen_spans(arrived)

        assert span.ids == (1, 9, 3)


class TestUniqueInsights:
    def test_one_insight_from_both_channels_in_one_window_is_one_citing_both(self) -> None:
        mic = item(1, DECISION, 30, stream=1, speaker="Alex")
        others = item(2, DECISION, 30.005, stream=2, speaker="Others")

        (group,) = repeats.unique_insights([mic, others])

        assert group.ids == (1, 2)
        assert group.speakers == ("Alex", "Others")

    def test_the_next_windows_repeating_it_join_it(self) -> None:
        copies = [item(n, DECISION, 30 * n, stream=n % 2) for n in range(1, 7)]

        (group,) = repeats.unique_insights(copies)

        assert group.count == 6 and (group.start_ms, group.end_ms) == (30_000, 190_000)

    def test_the_first_copy_is_the_one_stored_first_whatever_its_start(self) -> None:
        # The system-audio copy of the window starts 5 ms earlier but was stored second.
        stored_first = item(7, DECISION, 30.005, stream=1)
        stored_second = item(8, DECISION, 30, stream=2)

        for arrived in itertools.permutations([stored_first, stored_second]):
            (group,) = repeats.unique_insights(arrived)
            assert (group.id, group.ids, group.start_ms) == (7, (7, 8), 30_000)

    def test_the_same_point_made_again_much_later_is_a_new_moment(self) -> None:
        early = item(1, DECISION, 60)
        repeat = item(2, DECISION, 60 + 4 * 60)
        much_later = item(3, DECISION, 60 + 4 * 60 + 6 * 60)

        groups = repeats.unique_insights([early, repeat, much_later])

        assert ids(groups) == [(1, 2), (3,)]
        assert repeats.REPEAT_WITHIN_MS == 5 * MIN

    def test_different_insights_stay_apart_in_time_order(self) -> None:
        items = [
            item(1, "Offer: 15% annual discount", 130),
            item(2, DECISION, 30),
            item(3, "Offer: 15% annual discount", 160),
            item(4, DECISION, 60),
        ]

        assert ids(repeats.unique_insights(items)) == [(2, 4), (1, 3)]


class TestChanges:
    def test_a_new_copy_shows_its_group_again_and_nothing_else(self) -> None:
        before = repeats.screen_spans([item(1, PRICING, 10), item(2, FEATURES, 20)])
        after = repeats.screen_spans([item(1, PRICING, 10), item(2, FEATURES, 20),
                                      item(3, FEATURES, 30)])  # fmt: skip

        change = repeats.changes(before, after)

        assert ids(change.show) == [(2, 3)] and change.gone == []

    def test_a_late_copy_that_becomes_a_span_first_removes_the_old_element(self) -> None:
        before = repeats.screen_spans([item(5, PRICING, 20), item(6, PRICING, 30)])
        after = repeats.screen_spans([item(5, PRICING, 20), item(6, PRICING, 30),
                                      item(9, PRICING, 10)])  # fmt: skip

        change = repeats.changes(before, after)

        assert ids(change.show) == [(9, 5, 6)] and change.gone == [5]

    def test_a_late_copy_between_two_spans_joins_them(self) -> None:
        discounted = PRICING.replace(".", ", billed annually, 15% discount.")
        spans = [item(1, PRICING, 10), item(3, discounted, 30)]
        bridge = item(9, PRICING.replace(".", ", billed annually."), 20)
        before = repeats.screen_spans(spans)

        change = repeats.changes(before, repeats.screen_spans([*spans, bridge]))

        assert repeats.same_text(PRICING, bridge.text)
        assert repeats.same_text(bridge.text, spans[1].text)
        assert ids(before) == [(1,), (3,)]
        assert ids(change.show) == [(1, 9, 3)] and change.gone == [3]

    def test_the_same_groups_change_nothing(self) -> None:
        groups = repeats.unique_insights([item(1, DECISION, 10), item(2, DECISION, 20)])

        assert repeats.changes(groups, groups) == repeats.Changes(show=[], gone=[])


def test_group_of_and_firsts_name_the_group_standing_for_each_copy() -> None:
    groups = repeats.screen_spans([item(1, PRICING, 10), item(2, PRICING, 20),
                                   item(3, FEATURES, 30)])  # fmt: skip

    assert repeats.group_of(groups, 2).ids == (1, 2)
    assert repeats.group_of(groups, 99) is None
    assert repeats.firsts(groups) == {1: 1, 2: 1, 3: 3}


# --- the bundled sales call, played by the emulator -----------------------------------------


@pytest.fixture
def sales_call(videodb, owner) -> CaptureSession:
    """The bundled sales call played through VideoDB's emulator with the AI running, every
    event stored through the relay's ingest (its backfill: no socket is needed)."""
    session = handoff.create_session(
        owner, title="Sales call", audio_prompt="Decisions", visual_prompt="Screen"
    )
    token = handoff.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, "sales_call", speed=1, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    lifecycle.sync_session(session.pk)
    lifecycle.start_ai(session.pk)
    videodb.control.set_speed(session.videodb_id, 40)
    videodb.control.wait_for_meeting(session.videodb_id, timeout=60)
    session = CaptureSession.objects.get(pk=session.pk)
    recovery.backfill(session)
    return session


@pytest.mark.timeout(120)
def test_the_sales_call_shows_each_insight_and_each_screen_once(sales_call, client) -> None:
    rec = record.load(sales_call)
    stored = Insight.objects.filter(session=sales_call)
    scenes = [n.text for n in rec.visual]
    distinct_scenes = [text for text, _ in itertools.groupby(scenes)]

    # VideoDB repeated itself: both channels, every window, every 10 s of an unchanged screen.
    assert len(rec.audio) > 2 * len({n.text for n in rec.audio})
    assert len(rec.visual) > 2 * len(distinct_scenes)
    # Shown once: one group per distinct insight, one span per screen the meeting showed.
    assert len(rec.insights) == len({n.text for n in rec.audio})
    assert [span.text for span in rec.screens] == distinct_scenes
    # The microphone is named after the meeting's owner when VideoDB reports it.
    owner = str(sales_call.owner)
    assert all(group.speakers == (owner, "Others") for group in rec.insights if group.count > 2)
    # Every copy is still stored as it came, and cited by its group.
    assert stored.count() == len(rec.audio) + len(rec.visual)
    cited = [copy_id for group in [*rec.insights, *rec.screens] for copy_id in group.ids]
    assert sorted(cited) == sorted(stored.values_list("pk", flat=True))

    client.force_login(sales_call.owner)
    page = client.get(f"/sessions/{sales_call.pk}/history/").content.decode()

    assert f"{len(rec.insights)} insights ({len(rec.audio)} reported)" in page
    assert f"{len(rec.screens)} screens shown ({len(rec.visual)} descriptions)" in page
    assert page.count('class="insight insight-audio"') == len(rec.insights)
    assert page.count('class="insight insight-visual"') == len(rec.screens)


# --- on the history page and in search ---------------------------------------------------


@pytest.fixture
def repeating(meeting, mic, system_audio, screen) -> dict:
    """A started meeting where VideoDB repeated a decision three times and described an
    unchanged slide four times, then showed a spreadsheet."""
    start = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    CaptureSession.objects.filter(pk=meeting.pk).update(
        started_at=start, ended_at=start + timedelta(minutes=5), status="stopped"
    )
    base = int(start.timestamp() * 1000)
    decision = [note(mic, DECISION, base + 30_000), note(system_audio, DECISION, base + 30_000),
                note(mic, DECISION, base + 60_000)]  # fmt: skip
    slides = [note(screen, PRICING, base + s * 1000, kind="visual") for s in (10, 20, 30, 40)]
    sheet = note(screen, "Comparison spreadsheet", base + 50_000, kind="visual")
    return {"session": meeting, "decision": decision, "slides": slides, "sheet": sheet}


def test_the_history_page_lists_each_repetition_once_and_counts_both(
    repeating, owner_client
) -> None:
    session, decision, slides = repeating["session"], repeating["decision"], repeating["slides"]

    body = owner_client.get(f"/sessions/{session.pk}/history/").content.decode()

    assert "2 screens shown (5 descriptions)" in body and "1 insight (3 reported)" in body
    insights = body.split('id="insights-heading"')[1].split("</section>")[0]
    assert insights.count('<li id="ins-') == 1 and insights.count(DECISION) == 1
    assert f'<li id="ins-{decision[0].pk}"' in insights
    assert "reported 3 times (Host, Others)" in insights
    screen = body.split('id="screen-heading"')[1].split("</section>")[0]
    assert screen.count('<li id="ins-') == 2
    assert f'>00:10\u201300:45</a> <span class="text">{PRICING}</span>' in screen
    assert "described 4 times" in screen
    # A link to any copy lands on its group.
    for copy in [*decision[1:], *slides[1:]]:
        assert f'<span id="ins-{copy.pk}" class="copy-anchor"></span>' in body
    # The timeline has one screen-change tick per span.
    assert body.count('class="marker-screen"') == 2
    assert f"#ins-{slides[0].pk}" in body and f'#ins-{slides[1].pk}"' not in body


def test_a_search_for_a_repeated_insight_shows_one_hit_at_its_group(
    repeating, owner_client
) -> None:
    session, decision = repeating["session"], repeating["decision"]

    body = owner_client.get("/search/", {"q": "hundred seats"}).content.decode()

    assert "1 moment found" in body
    assert f"/sessions/{session.pk}/history/?at={decision[0].start_ms}#ins-{decision[0].pk}" in body
