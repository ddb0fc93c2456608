"""A brief's decisions and action items are searchable with everything else, on SQLite and on
PostgreSQL (this file runs in both passes), while they are current, at their first moment."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_app.history import search, search_text
from sessions_app.models import SearchEntry
from tests.sessions_app.conftest import fire, note, say
from tests.sessions_app.intelligence.kept_briefs import asked, decided, summed_up, to_do

pytestmark = pytest.mark.django_db


def found(text: str, session) -> list[tuple[str, str]]:
    hits = search.matches(search_text.parse(text), [session.pk])
    return list(hits.values_list("kind", "text"))


@pytest.fixture
def cited(meeting, mic, screen):
    return {
        "line": say(mic, "Ana will send the invoice", 5_000, final=True),
        "slide": note(screen, "Quarterly numbers slide", 2_000, kind="visual"),
        "alert": fire(mic, "budget_risk", 9_000),
    }


def test_an_action_item_is_found_by_its_words_owner_and_due(meeting, cited):
    to_do(meeting, "Reconcile the ledgers", cited["line"], owner="Ana", due="Thursday")
    expected = [("action", "Reconcile the ledgers · owner Ana · due Thursday")]
    assert found("ledger", meeting) == expected
    assert found("thursday", meeting) == expected
    assert found("ana", meeting) == [*expected, ("speech", "Ana will send the invoice")]


def test_a_decision_is_found_at_its_first_cited_moment(meeting, cited, screen):
    decided(meeting, "Freeze hiring until Q3", cited["slide"], cited["alert"])
    entry = SearchEntry.objects.get(kind="decision")
    assert (entry.text, entry.stream, entry.channel) == ("Freeze hiring until Q3", screen, "screen")
    assert (entry.start_ms, entry.brief_item.text) == (2_000, "Freeze hiring until Q3")


def test_summaries_questions_and_uncited_items_are_not_moments(meeting, cited):
    summed_up(meeting, "Ledger talk", cited["line"])
    asked(meeting, "Ledger owner?", cited["line"])
    to_do(meeting, "Ledger review")  # cites nothing stored
    malformed = to_do(meeting, "Ledger audit", cited["line"])
    malformed.evidence = [{"kind": "transcript"}, {"kind": "transcript", "id": 999_999}, 3]
    malformed.save()
    assert found("ledger", meeting) == []


def test_an_item_that_leaves_the_brief_leaves_the_index_and_comes_back(meeting, cited):
    item = to_do(meeting, "Reconcile the ledgers", cited["line"])
    item.is_current = False
    item.save()
    assert found("ledger", meeting) == []
    item.is_current = True
    item.text = "Reconcile the ledgers twice"
    item.save()
    assert found("twice", meeting) == [("action", "Reconcile the ledgers twice")]
    assert SearchEntry.objects.filter(brief_item=item).count() == 1
    item.delete()
    assert found("ledger", meeting) == []


def test_a_rebuild_indexes_the_current_items_too(meeting, cited):
    to_do(meeting, "Reconcile the ledgers", cited["line"])
    to_do(meeting, "Ledger archive", cited["line"], is_current=False)
    SearchEntry.objects.all().delete()  # as after a raw restore
    assert search.rebuild([meeting]) == 4
    assert found("ledger", meeting) == [("action", "Reconcile the ledgers")]


def test_search_shows_the_kind_and_opens_the_moment(meeting, cited, owner_client):
    item = to_do(meeting, "Reconcile the ledgers", cited["line"], owner="Ana")
    page = owner_client.get(reverse("search"), {"q": "ledgers"}).content.decode()
    assert '<span class="chip">Action item</span>' in page
    line = cited["line"]
    assert f"/sessions/{meeting.pk}/history/?at={line.start_ms}#line-{line.pk}" in page
    facets = owner_client.get(reverse("search_facets"), {"q": "ledgers"}).content.decode()
    assert "kind=action" in facets  # the facet, loaded after the hits
    results = search.search(search_text.parse("ledgers"), [meeting.pk])
    counts = search.facet_counts(search_text.parse("ledgers"), [meeting.pk])
    assert [(f.value, f.label) for f in counts.facets["kind"]] == [("action", "Action item")]
    narrowed = owner_client.get(reverse("search"), {"q": "ledgers", "kind": "action"})
    assert narrowed.status_code == 200 and "Reconcile the" in narrowed.content.decode()
    assert item.pk == results.hits[0].entry.brief_item_id
