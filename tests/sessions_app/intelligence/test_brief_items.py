"""A brief's items across refreshes and meetings: identity keys, rewordings that keep their
row, a status set by hand, and action items that follow an open one of an earlier meeting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessions_app.intelligence import answers, brief, items
from sessions_app.intelligence.sources import Source
from sessions_app.live import ingest
from sessions_app.models import Brief, BriefItem, CaptureSession
from tests.sessions_app.intelligence.played import live_session, store_meeting


def test_an_item_s_key_ignores_word_order_case_and_inflection() -> None:
    key = items.key_for("Jonas updates the pricing pages by Friday")
    assert key == items.key_for("by Friday, JONAS updated the pricing page")
    assert key != items.key_for("Jonas updates the billing pages by Friday")
    long = items.key_for(" ".join(f"word{n}" for n in range(40)))
    assert len(long) == items.KEY_LENGTH
    assert long != items.key_for(" ".join(f"word{n}" for n in range(41)))
    assert items.key_for("And so on...").startswith("#")


def source(number: int, item_id: int, text: str) -> Source:
    return Source(number, "transcript", (item_id,), 1000 * number, 1000 * number + 900,
                  1000 * number, 1000 * number + 900, "Priya", text)  # fmt: skip


def answer(**lists: list[answers.Item]) -> answers.Checked:
    return answers.Checked({name: lists.get(name, []) for name in brief.prompts.LISTS})


@pytest.fixture
def session(make_session, make_stream, owner) -> CaptureSession:
    return live_session(make_session, make_stream, owner)


def store(session: CaptureSession, checked: answers.Checked) -> list[BriefItem]:
    number = Brief.objects.filter(session=session).count() + 1
    made = Brief.objects.create(
        session=session, number=number, model_name="basic", prompt_version="t"
    )
    return items.apply(session, made, checked, ingest.next_seq)


def test_a_reworded_item_keeps_its_row_by_its_words_or_its_evidence(session) -> None:
    one, two = source(1, 101, "ship it"), source(2, 102, "price it")
    first = store(session, answer(decisions=[
        answers.Item("We ship the beta on Friday.", (one,)),
        answers.Item("Pricing stays at twelve dollars.", (two,)),
    ]))  # fmt: skip
    ids = {row.text: row.pk for row in first}

    changed = store(session, answer(decisions=[
        answers.Item("The beta ships on Friday!", (one,)),  # same words, another order
        answers.Item("Keep the price of $12 for the starter tier.", (two,)),  # same evidence
    ]))  # fmt: skip

    rows = BriefItem.objects.filter(session=session).order_by("pk")
    assert [row.pk for row in rows] == sorted(ids.values())
    assert [row.text for row in rows] == [
        "The beta ships on Friday!",
        "Keep the price of $12 for the starter tier.",
    ]
    assert {row.pk for row in changed} == set(ids.values())
    assert all(row.is_current for row in rows)


def test_a_status_set_by_hand_is_never_overwritten_by_a_refresh(session, owner) -> None:
    one = source(1, 101, "Jonas will update the pricing page.")
    (row,) = store(session, answer(action_items=[
        answers.Item("Jonas updates the pricing page.", (one,), owner="Jonas"),
    ]))  # fmt: skip
    BriefItem.objects.filter(pk=row.pk).update(status="done", status_set_by=owner)

    store(session, answer(action_items=[
        answers.Item("Jonas updates the pricing page.", (one,), owner="Jonas", due="Friday"),
    ]))  # fmt: skip

    row.refresh_from_db()
    assert (row.status, row.due, row.status_set_by) == ("done", "Friday", owner)


def test_the_same_point_answered_twice_is_stored_once(session) -> None:
    one, two = source(1, 101, "a"), source(2, 102, "b")
    store(session, answer(decisions=[
        answers.Item("Ship on Friday.", (one,)),
        answers.Item("ship on friday", (two,)),
    ]))  # fmt: skip
    assert BriefItem.objects.filter(session=session).count() == 1


@pytest.fixture
def earlier_meeting(make_session, make_stream, owner, videodb) -> CaptureSession:
    """Last week's planning: its brief holds open action items (Priya's among them)."""
    session = live_session(make_session, make_stream, owner, title="Weekly planning",
                           series="Planning", started_minutes_ago=7 * 24 * 60)  # fmt: skip
    CaptureSession.objects.filter(pk=session.pk).update(
        created_at=session.started_at, status="stopped"
    )
    store_meeting(session, lines=[
        "I'll update the roadmap doc right after this call.",
        "Jonas, can you send the billing migration plan by Friday?",
    ])  # fmt: skip
    assert brief.refresh(session.pk, final=True) == "made"
    return CaptureSession.objects.get(pk=session.pk)


def test_an_action_item_raised_again_follows_the_open_one_of_an_earlier_meeting(
    earlier_meeting, make_session, make_stream, owner, videodb
) -> None:
    original = BriefItem.objects.get(session=earlier_meeting, text__startswith="I'll update")
    today = live_session(make_session, make_stream, owner, title="Planning, week 2",
                         series="Planning")  # fmt: skip
    CaptureSession.objects.filter(pk=today.pk).update(status="stopped")
    store_meeting(today, lines=[
        "I'll update the roadmap doc after this call.",
        "I'll book the offsite venue tomorrow.",
    ])  # fmt: skip

    assert brief.refresh(today.pk, final=True) == "made"

    again = BriefItem.objects.get(session=today, text__startswith="I'll update")
    assert again.follows == original and again.pk != original.pk
    new = BriefItem.objects.get(session=today, text__startswith="I'll book")
    assert new.follows is None


@pytest.mark.parametrize(
    "what",
    ["another series", "another owner", "done already", "a later meeting"],
)
def test_an_action_item_follows_only_an_open_one_of_the_same_owner_s_earlier_series_meeting(
    earlier_meeting, make_session, make_stream, make_user, owner, videodb, what
) -> None:
    fields = {"title": "Planning, week 2", "series": "Planning"}
    someone = owner
    if what == "another series":
        fields["series"] = "Sales"
    elif what == "another owner":
        someone = make_user("otto")
    elif what == "done already":
        BriefItem.objects.filter(session=earlier_meeting).update(status="done")
    today = live_session(make_session, make_stream, someone, **fields)
    if what == "a later meeting":
        CaptureSession.objects.filter(pk=earlier_meeting.pk).update(
            created_at=today.created_at + timedelta(minutes=1)
        )
    CaptureSession.objects.filter(pk=today.pk).update(status="stopped")
    store_meeting(today, lines=["I'll update the roadmap doc after this call."])

    assert brief.refresh(today.pk, final=True) == "made"

    assert BriefItem.objects.get(session=today, kind="action").follows is None


def test_without_a_series_the_same_title_is_the_series(
    make_session, make_stream, owner, videodb
) -> None:
    first = live_session(make_session, make_stream, owner, title="Pricing sync")
    second = live_session(make_session, make_stream, owner, title="pricing SYNC")
    CaptureSession.objects.filter(pk=first.pk).update(
        created_at=first.created_at - timedelta(days=7)
    )
    CaptureSession.objects.filter(pk__in=[first.pk, second.pk]).update(status="stopped")
    for session in (first, second):
        store_meeting(session, lines=["I'll send the billing migration plan by Friday."])
        assert brief.refresh(session.pk, final=True) == "made"
    original = BriefItem.objects.get(session=first, kind="action")
    assert BriefItem.objects.get(session=second, kind="action").follows == original
