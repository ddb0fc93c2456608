"""Action items across meetings: each task listed once with its later mentions under it,
filters, and marking done or open again by the session's owner only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from sessions_app.history import search, search_text
from sessions_app.intelligence import actions
from sessions_app.models import BriefItem, CaptureSession, SearchEntry
from tests.sessions_app.conftest import say
from tests.sessions_app.intelligence.kept_briefs import decided, to_do

pytestmark = pytest.mark.django_db


@pytest.fixture
def series(owner, make_session, make_stream):
    """Two meetings of one series, a week apart, the later raising an open item again."""
    now = timezone.now()
    first = make_session(
        owner, title="Weekly sync", series="Platform", created_at=now - timedelta(days=7)
    )
    later = make_session(owner, title="Weekly sync", series="Platform", created_at=now)
    first_line = say(make_stream(first), "Ana will fix the build", 10_000, final=True)
    later_line = say(make_stream(later), "The build is still broken, Ana", 20_000, final=True)
    original = to_do(first, "Fix the build", first_line, owner="Ana", due="Friday")
    again = to_do(later, "Fix the build", later_line, owner="Ana", follows=original)
    fresh = to_do(later, "Write the release notes", later_line, owner="Bo")
    return {"first": first, "later": later, "original": original, "again": again, "fresh": fresh}


def listed(user) -> list[str]:
    """The tasks ``user`` sees on the action-items page of their own sessions, unfiltered."""
    sessions = CaptureSession.objects.filter(owner=user)
    return [i.text for i in actions.open_items(sessions, actions.Filters(), user=user)]


def test_each_task_is_listed_once_newest_meeting_first(series, owner):
    assert listed(owner) == ["Write the release notes", "Fix the build"]


def test_later_mentions_are_shown_under_the_first(series, owner):
    sessions = CaptureSession.objects.filter(owner=owner)
    rows = actions.rows(
        actions.open_items(sessions, actions.Filters(), user=owner), sessions, owner
    )
    fix = next(row for row in rows if row.item.text == "Fix the build")
    assert [m.item.pk for m in fix.mentions] == [series["again"].pk]
    assert fix.mentions[0].item.session == series["later"]
    assert fix.can_change and fix.moment == ""  # no start recorded: no offset to show
    assert fix.moment_url.endswith(f"#line-{series['original'].evidence[0]['id']}")


def test_a_mention_whose_first_is_out_of_sight_stands_alone(series, owner):
    only_later = CaptureSession.objects.filter(pk=series["later"].pk)
    items = actions.open_items(only_later, actions.Filters(), user=owner)
    assert sorted(i.text for i in items) == ["Fix the build", "Write the release notes"]
    BriefItem.objects.filter(pk=series["original"].pk).update(is_current=False)
    assert sorted(listed(owner)) == ["Fix the build", "Write the release notes"]


def test_only_current_action_items_of_the_sessions_given_are_listed(
    series, owner, stranger, make_session, make_stream
):
    theirs = make_session(stranger)
    to_do(theirs, "Their task", say(make_stream(theirs), "x", 1, final=True))
    decided(series["later"], "A decision is not a task", series["again"].session.segments.get())
    to_do(series["later"], "Dropped by a refresh", is_current=False)
    assert listed(owner) == ["Write the release notes", "Fix the build"]
    assert listed(stranger) == ["Their task"]


def test_filters_by_whose_owner_status_and_series(series, owner, make_session, make_stream):
    shared = make_session(owner, title="Budget review")  # no series: its title is its series
    to_do(shared, "Approve the budget", say(make_stream(shared), "x", 1, final=True))
    sessions = CaptureSession.objects.filter(owner=owner)

    def texts(**filters) -> list[str]:
        items = actions.open_items(sessions, actions.Filters(**filters), user=owner)
        return [i.text for i in items]

    assert texts(owner="an") == ["Fix the build"]
    assert texts(series="Platform") == ["Write the release notes", "Fix the build"]
    assert texts(series="Budget review") == ["Approve the budget"]
    assert texts(series="Weekly sync") == []  # named series win over titles
    assert texts(whose="shared") == []
    assert len(texts(whose="mine")) == 3
    assert actions.series_names(sessions) == ["Budget review", "Platform"]
    actions.set_status(series["fresh"], owner, "done")
    assert texts(status="done") == ["Write the release notes"]
    assert len(texts(status="all")) == 3
    assert "Write the release notes" not in texts()
    assert not actions.open_items(sessions, actions.Filters(whose="mine"), user=None).exists()


def test_marking_done_marks_the_later_mentions_and_keeps_it_from_refreshes(series, owner):
    before = CaptureSession.objects.get(pk=series["later"].pk).last_seq
    changed = actions.set_status(series["original"], owner, "done")
    assert {i.pk for i in changed} == {series["original"].pk, series["again"].pk}
    for item in BriefItem.objects.filter(pk__in=[series["original"].pk, series["again"].pk]):
        assert (item.status, item.status_set_by) == ("done", owner)
    again = BriefItem.objects.get(pk=series["again"].pk)
    assert again.seq == CaptureSession.objects.get(pk=series["later"].pk).last_seq > before
    assert listed(owner) == ["Write the release notes"]

    actions.set_status(series["original"], owner, "open")
    assert BriefItem.objects.get(pk=series["again"].pk).status == "open"
    assert listed(owner) == ["Write the release notes", "Fix the build"]
    # Setting what is already set by the same person changes nothing.
    assert actions.set_status(series["original"], owner, "open") == []


def test_only_the_owner_may_mark_and_only_to_a_known_status(series, stranger, owner):
    with pytest.raises(PermissionDenied):
        actions.set_status(series["original"], stranger, "done")
    with pytest.raises(ValueError, match="unknown status"):
        actions.set_status(series["original"], owner, "closed")
    decision = decided(series["first"], "Use Postgres")
    with pytest.raises(ValueError, match="only an action item"):
        actions.set_status(decision, owner, "done")
    assert BriefItem.objects.get(pk=series["original"].pk).status == "open"


def test_a_marked_item_stays_searchable(series, owner):
    actions.set_status(series["fresh"], owner, "done")
    hits = search.matches(search_text.parse("release notes"), [series["later"].pk])
    assert [e.kind for e in hits] == [SearchEntry.Kind.ACTION]
