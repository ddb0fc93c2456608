"""Search: the index follows what is stored, queries find the same moments on SQLite and on
PostgreSQL (this file runs in both passes), and no query a person can type is an error."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from sessions_app.history import search, search_text
from sessions_app.models import SearchEntry, TranscriptSegment
from tests.sessions_app.conftest import HOSTILE, fire, note, say

pytestmark = pytest.mark.django_db


def found(text: str, *sessions) -> list[str]:
    """The texts of every moment ``text`` finds in ``sessions``, newest first."""
    query = search_text.parse(text)
    if query.is_empty:
        return []
    return list(search.matches(query, [s.pk for s in sessions]).values_list("text", flat=True))


@pytest.fixture
def corpus(meeting, mic, system_audio, screen):
    """A small meeting with the kinds of text search has to get right."""
    lines = [
        (mic, "Let's review the pricing for the enterprise plan", 1_000),
        (system_audio, "The annual plan gets a twenty percent discount", 5_000),
        (mic, "Prices go up in March; the e-mail goes out on 3.5", 9_000),
        (system_audio, "Café crème and naïve résumé in the ÜBER meeting", 13_000),
        (mic, "東京 office opens; привет from the Moscow team", 17_000),
        (system_audio, "To be or not to be, that is the question", 21_000),
        (mic, "This draft is not final: draft pricing only", 25_000),
    ]
    for stream, text, start in lines:
        say(stream, text, start, final=True)
    note(screen, "Slide: Pricing tiers — Starter, Team, Enterprise", 2_000, kind="visual")
    note(system_audio, "Decision: ship the annual discount in Q3", 6_000, kind="audio")
    fire(mic, "pricing_shared", 3_000, text="Pricing slide was shown")
    return meeting


# --- what gets indexed ------------------------------------------------------------------------


def test_only_final_speech_is_searchable_and_the_final_text_replaces_the_interim(meeting, mic):
    say(mic, "we should talk about budg", 1_000)
    assert found("budg*", meeting) == []
    say(mic, "we should talk about budgets and headcount", 1_000, final=True)
    assert found("budget", meeting) == ["we should talk about budgets and headcount"]
    assert SearchEntry.objects.filter(kind="speech").count() == 1


def test_insights_screen_descriptions_and_alert_labels_are_searchable(corpus):
    kinds = dict(
        search.matches(search_text.parse("pricing"), [corpus.pk]).values_list("text", "kind")
    )
    assert kinds["Slide: Pricing tiers — Starter, Team, Enterprise"] == "visual"
    assert kinds["pricing_shared Pricing slide was shown"] == "alert"
    assert found("shared", corpus) == ["pricing_shared Pricing slide was shown"]
    assert found("decision", corpus) == ["Decision: ship the annual discount in Q3"]


def test_a_cleared_alert_is_not_searchable(meeting, mic):
    alert = fire(mic, "pricing_shared", 3_000)
    alert.triggered = False
    alert.save()
    assert found("pricing", meeting) == []


def test_deleting_an_item_or_a_session_removes_its_moments(corpus, mic):
    segment = TranscriptSegment.objects.get(text__startswith="Let's review")
    segment.delete()
    assert "Let's review the pricing for the enterprise plan" not in found("pricing", corpus)
    pk = corpus.pk
    corpus.delete()
    corpus.pk = pk
    assert SearchEntry.objects.count() == 0
    # The full-text structure follows the rows: a new row is found, nothing stale is.
    assert found("pricing", corpus) == []


def test_rebuild_recreates_the_same_entries(corpus):
    before = sorted(SearchEntry.objects.values_list("kind", "text", "terms", "start_ms"))
    assert search.rebuild([corpus]) == len(before)
    after = sorted(SearchEntry.objects.values_list("kind", "text", "terms", "start_ms"))
    assert after == before
    assert len(found("pricing", corpus)) == 5


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # stems: "prices" finds pricing and prices
        ("prices", 5),
        ('"annual plan"', 1),
        ('"plan annual"', 0),
        ("pric*", 5),
        ("pricing*", 5),
        ("disc*", 2),
        ("enterp*", 2),  # longer than the FTS5 prefix indexes: cut, then tested on the row
        ("pricing -enterp*", 3),
        ("cafe", 1),
        ("CAFÉ", 1),
        ("resume", 1),
        ("über", 1),
        ("東京", 1),
        ("ПРИВЕТ", 1),
        ("e-mail", 1),
        ('"3.5"', 1),
        ("draft -pricing", 0),
        ("pricing -draft", 4),
        ("march OR moscow", 2),
        ("march moscow", 0),
        ("to be or not to be", 1),
        ("the", 7),
    ],
)
def test_queries_find_the_same_moments_on_either_database(corpus, query, expected):
    assert len(found(query, corpus)) == expected, found(query, corpus)


def test_hits_are_newest_first(corpus):
    assert found("pricing", corpus) == [
        "This draft is not final: draft pricing only",
        "Prices go up in March; the e-mail goes out on 3.5",
        "pricing_shared Pricing slide was shown",
        "Slide: Pricing tiers — Starter, Team, Enterprise",
        "Let's review the pricing for the enterprise plan",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "the and of",
        "x" * 1000,
        "pricing " * 200,
        '"unclosed phrase',
        '""',
        "AND OR NOT",
        "pricing AND (discount OR",
        "a:b OR -c* NEAR(x y) ^z +y ~w {x} [y] <z> 'q' \\ / | & ! @ # $ % ^ *",
        "-pricing",
        "*",
        "'; DROP TABLE sessions_app_searchentry; --",
        "emoji 🚀 and 👍🏽 zalgo Z̷̢͎a̶l̵g̸o",
        "\x00\x01 control",
        "\u202eevil",
    ],
)
def test_hard_queries_never_fail(corpus, text):
    query = search_text.parse(text)
    results = search.search(query, [corpus.pk])
    assert results.total == len(results.hits) or results.pages > 1
    assert SearchEntry.objects.count() == 10  # nothing was dropped


def test_a_long_query_is_cut_with_a_note():
    query = search_text.parse("word " * 300)
    assert any("first 1000 characters" in note for note in query.notes)
    assert len(query.clauses) <= search_text.MAX_CLAUSES


def test_stop_words_are_left_out_unless_there_is_nothing_else():
    assert search_text.parse("the plan").clauses == ((search_text.Match("word", ("plan",)),),)
    assert search_text.parse("the plan").notes == ("Common words were left out: the.",)
    only = search_text.parse("to be or not")
    assert only.clauses == ((search_text.Match("phrase", ("to", "be", "or", "not")),),)


def test_a_query_that_only_excludes_says_so():
    query = search_text.parse("-pricing")
    assert query.is_empty
    assert query.notes == ("Add a word to look for: a query cannot only exclude words.",)


def test_search_is_scoped_to_the_sessions_given(corpus, make_session, make_stream, stranger):
    theirs = make_session(stranger, title="Their meeting")
    say(make_stream(theirs, "mic:default"), "their secret pricing plan", 1_000, final=True)
    assert "their secret pricing plan" not in found("pricing", corpus)
    assert found("secret", corpus) == []
    assert found("secret", theirs) == ["their secret pricing plan"]


# --- results: facets, pages, snippets -----------------------------------------------------


def test_facets_count_every_hit_and_filters_narrow_them(corpus):
    query = search_text.parse("pricing")
    results = search.search(query, [corpus.pk])
    counts = search.facet_counts(query, [corpus.pk])
    assert results.total == counts.total == 5
    assert {f.value: f.count for f in counts.facets["kind"]} == {
        "speech": 3,
        "visual": 1,
        "alert": 1,
    }
    assert {f.value: f.count for f in counts.facets["channel"]} == {"mic": 4, "screen": 1}
    assert [(f.label, f.count) for f in counts.facets["session"]] == [(corpus.title, 5)]
    speech = search.Filters(kinds=("speech",))
    narrowed = search.search(query, [corpus.pk], speech)
    assert narrowed.total == search.facet_counts(query, [corpus.pk], speech).total == 3
    assert {h.entry.kind for h in narrowed.hits} == {"speech"}


def test_results_are_paged(corpus):
    query = search_text.parse("the")
    first = search.search(query, [corpus.pk], page=1, page_size=3)
    third = search.search(query, [corpus.pk], page=3, page_size=3)
    beyond = search.search(query, [corpus.pk], page=99, page_size=3)
    assert (first.total, first.pages, len(first.hits), first.has_next) == (7, 3, 3, True)
    assert (len(third.hits), third.has_next) == (1, False)
    assert beyond.page == 3  # a page past the end shows the last one
    seen = [
        h.entry.pk
        for p in (1, 2, 3)
        for h in search.search(query, [corpus.pk], page=p, page_size=3).hits
    ]
    assert len(set(seen)) == 7


def test_snippets_mark_what_matched_and_escape_everything_else(meeting, mic):
    say(mic, f"pricing {HOSTILE} prices", 1_000, final=True)
    hit = search.search(search_text.parse("price"), [meeting.pk]).hits[0]
    assert "<img" not in hit.snippet
    assert "&lt;img src=x onerror=alert(1)&gt;" in hit.snippet
    assert hit.snippet.count("<mark>") == 2
    assert hit.snippet.startswith("<mark>pricing</mark>")


def test_a_snippet_of_a_long_line_is_cut_around_the_first_match():
    text = (
        " ".join(f"w{i}" for i in range(200)) + " pricing " + " ".join(f"v{i}" for i in range(200))
    )
    snippet = search_text.highlight(text, search_text.parse("pricing"))
    assert snippet.startswith("… ") and snippet.endswith(" …")
    assert "<mark>pricing</mark>" in snippet
    assert len(snippet) < 200


def test_phrase_highlight_marks_the_whole_phrase():
    snippet = search_text.highlight("The Annual Plan is new", search_text.parse('"annual plan"'))
    assert snippet == "The <mark>Annual Plan</mark> is new"


def test_a_corrected_final_is_found_by_its_new_words_only(meeting, mic):
    say(mic, "the vendor is Initech", 1_000, final=True)
    say(mic, "the vendor is Globex", 1_000, final=True)  # VideoDB corrected the final
    assert found("initech", meeting) == []
    assert found("globex", meeting) == ["the vendor is Globex"]
    assert SearchEntry.objects.count() == 1


def test_no_sessions_in_scope_finds_nothing(corpus):
    assert list(search.matches(search_text.parse("pricing"), [])) == []
    narrowed = search.Filters(session_ids=(corpus.pk + 1000,))
    assert list(search.matches(search_text.parse("pricing"), [corpus.pk], narrowed)) == []


# --- VideoDB's repetitions: one hit per group ---------------------------------------------

DECISION = "Decision: ship the annual plan on Friday"
SLIDE = "Pricing page: three tiers, Starter, Team, Enterprise"


@pytest.fixture
def repeated(meeting, mic, system_audio, screen):
    """The same decision from both channels in two windows, an unchanged screen described
    four times, then another screen, then the first one again."""
    decisions = [note(stream, DECISION, start) for start in (30_000, 60_000)
                 for stream in (mic, system_audio)]  # fmt: skip
    slides = [note(screen, SLIDE, 10_000 * n, kind="visual") for n in range(1, 5)]
    note(screen, "Comparison spreadsheet", 50_000, kind="visual")
    again = note(screen, SLIDE, 60_000, kind="visual")
    return {"decisions": decisions, "slides": slides, "again": again}


def hits(text: str, session, **options) -> search.Results:
    return search.search(search_text.parse(text), [session.pk], **options)


def test_a_repeated_insight_is_one_hit_its_first_copy_counted_once(meeting, repeated):
    results = hits("ship", meeting)

    counts = search.facet_counts(search_text.parse("ship"), [meeting.pk])

    (hit,) = results.hits
    assert hit.entry.insight_id == repeated["decisions"][0].pk
    assert results.total == counts.total == 1 and results.pages == 1
    assert {f.value: f.count for f in counts.facets["kind"]} == {"audio": 1}
    assert {f.value: f.count for f in counts.facets["channel"]} == {"mic": 1}
    assert [f.count for f in counts.facets["session"]] == [1]
    assert sum(f.count for f in counts.facets["day"]) == 1


def test_an_unchanged_screen_is_one_hit_and_a_screen_shown_again_is_another(meeting, repeated):
    results = hits("tiers", meeting)

    assert [h.entry.insight_id for h in results.hits] == [
        repeated["again"].pk,
        repeated["slides"][0].pk,
    ]
    counts = search.facet_counts(search_text.parse("tiers"), [meeting.pk])
    assert results.total == counts.total == 2
    assert {f.value: f.count for f in counts.facets["kind"]} == {"visual": 2}


def test_the_stored_copies_stay_searchable_rows(meeting, repeated):
    # Search keeps one entry per stored copy: only what is listed and counted is grouped.
    assert len(found("ship", meeting)) == 4
    assert len(found("tiers", meeting)) == 5


def test_a_copy_that_alone_matches_stands_for_its_group(meeting, mic):
    note(mic, "Decision: ship the annual plan", 30_000)
    later = note(mic, "Decision: ship the annual plan Friday", 60_000)

    (hit,) = hits("friday", meeting).hits

    assert hit.entry.insight_id == later.pk


def test_pages_and_totals_count_groups(meeting, mic, system_audio):
    for n in range(5):
        for stream in (mic, system_audio):
            note(stream, f"Action {n}: widget review number {n * 7919}", 30_000 + n * 400_000)

    first = hits("widget", meeting, page_size=2)
    seen = [h.entry.insight_id for p in (1, 2, 3)
            for h in hits("widget", meeting, page=p, page_size=2).hits]  # fmt: skip

    assert (first.total, first.pages, len(first.hits)) == (5, 3, 2)
    assert len(seen) == len(set(seen)) == 5


def test_grouping_asks_one_query_more_however_many_hits(
    meeting, mic, system_audio, django_assert_max_num_queries
):
    for n in range(30):
        for stream in (mic, system_audio):
            note(stream, f"Action {n}: widget review number {n * 7919}", 30_000 + n * 400_000)
    query = search_text.parse("widget")

    with django_assert_max_num_queries(1 + queries_without_repeats()):
        results = search.search(query, [meeting.pk])

    assert results.total == 30 and len(results.hits) == search.PAGE_SIZE


def test_the_pages_entries_sessions_and_streams_are_what_the_orm_reads(corpus, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 3)  # one session and stream shared by hits
    results = search.search(search_text.parse("pricing"), [corpus.pk])

    def columns(obj) -> list:
        return [getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields]

    assert len(results.hits) == 3
    for hit in results.hits:
        read = SearchEntry.objects.select_related("stream", "session").get(pk=hit.entry.pk)
        assert columns(hit.entry) == columns(read)
        assert columns(hit.entry.stream) == columns(read.stream)
        assert columns(hit.session) == columns(read.session) and hit.session is hit.entry.session
    assert len({id(hit.session) for hit in results.hits}) == 1


def queries_without_repeats() -> int:
    """The matching insights (none repeated), the capped count, and the page's entries with
    their streams and sessions; on PostgreSQL also the planner settings (search._quick_plans)."""
    return 3 + (connection.vendor == "postgresql")


def test_a_search_without_repeated_insights_asks_a_fixed_number_of_queries(
    corpus, django_assert_max_num_queries
):
    with django_assert_max_num_queries(queries_without_repeats()):
        results = search.search(search_text.parse("pricing"), [corpus.pk])

    assert results.total == 5


def test_a_hundred_excluded_words_are_capped_with_a_note_and_the_search_answers(corpus):
    text = "pricing " + " ".join(f"-nope{n}" for n in range(150))
    query = search_text.parse(text)
    assert len(query.excluded) == search_text.MAX_EXCLUDED
    assert f"Only the first {search_text.MAX_EXCLUDED} excluded words were used." in query.notes
    results = search.search(query, [corpus.pk])  # SQLite's FTS5 parser overflowed on 100+
    assert results.total >= 3


def test_a_long_chain_of_or_is_capped_with_a_note_and_the_search_answers(corpus):
    text = " OR ".join(["pricing", *(f"nope{n}" for n in range(150))])
    query = search_text.parse(text)
    assert all(len(clause) <= search_text.MAX_ALTERNATIVES for clause in query.clauses)
    assert any("joined by OR" in note for note in query.notes)
    assert search.search(query, [corpus.pk]).total >= 3


def test_the_search_page_says_which_excluded_words_were_used(corpus, owner_client):
    text = "pricing " + " ".join(f"-nope{n}" for n in range(120))
    response = owner_client.get(reverse("search"), {"q": text})
    assert response.status_code == 200
    assert "Only the first 16 excluded words were used." in response.content.decode()


# --- capped counts, and the page read in time order past the cap -------------------------


def ids_of_every_page(text: str, sessions, **options) -> list[int]:
    """The entry ids of every page of a search, following has_next as the page does."""
    seen, page = [], 1
    while True:
        results = search.search(search_text.parse(text), [s.pk for s in sessions], page=page,
                                page_size=2, **options)  # fmt: skip
        seen += [h.entry.pk for h in results.hits]
        if not results.has_next:
            return seen
        page += 1


@pytest.fixture
def two_meetings(corpus, make_session, make_stream, owner):
    """The corpus and a second meeting of the same owner whose lines fall between its own."""
    other = make_session(owner, title="Pricing sync")
    mic, room = make_stream(other, "mic:default"), make_stream(other, "system_audio:default")
    for start in (3_000, 11_000, 23_000, 40_000):
        say(mic, f"the pricing follow-up at {start}", start, final=True)
    say(room, "the pricing echo at the same moment", 11_000, final=True)  # a tie in time
    return corpus, other


@pytest.mark.parametrize("text", ["the", "pricing", "pric*", '"annual plan"', "pricing -draft"])
def test_the_first_pages_are_the_same_when_the_count_stops_at_the_cap(two_meetings, text):
    uncapped = ids_of_every_page(text, two_meetings)
    expected = list(
        search.matches(search_text.parse(text), [s.pk for s in two_meetings]).values_list(
            "pk", flat=True
        )
    )
    assert uncapped == expected
    # Past the cap the page is read session by session in time order and merged: the same
    # hits in the same order (ties at one moment included), page after page.
    assert ids_of_every_page(text, two_meetings, count_cap=1) == expected


def test_past_the_cap_the_total_says_so_and_the_number_of_pages_is_not_claimed(two_meetings):
    results = search.search(
        search_text.parse("the"), [s.pk for s in two_meetings], page_size=2, count_cap=3
    )
    assert (results.capped, results.total, results.total_label) == (True, 3, "3+")
    assert results.pages == 0 and results.has_next and len(results.hits) == 2
    exact = search.search(search_text.parse("the"), [s.pk for s in two_meetings])
    assert (exact.capped, exact.total, exact.total_label) == (False, 12, "12")


def test_a_page_past_the_end_of_a_capped_search_is_empty_with_a_way_back(two_meetings):
    results = search.search(
        search_text.parse("the"), [s.pk for s in two_meetings], page=99, count_cap=3
    )
    assert results.hits == [] and not results.has_next and results.has_previous


def test_past_the_cap_filters_and_repeated_insights_are_kept(meeting, repeated):
    slides = search.Filters(kinds=("visual",))
    expected = [h.entry.pk for h in hits("tiers", meeting, filters=slides).hits]
    assert len(expected) == 2  # the slide and the same slide shown again, not its copies
    assert ids_of_every_page("tiers", [meeting], filters=slides, count_cap=1) == expected


def test_past_the_cap_many_sessions_are_read_the_plain_way_with_the_same_hits(
    two_meetings, monkeypatch
):
    expected = ids_of_every_page("the", two_meetings)
    monkeypatch.setattr(search, "MAX_MERGED_SESSIONS", 1)
    assert ids_of_every_page("the", two_meetings, count_cap=1) == expected


def test_a_query_with_a_prefix_counts_to_its_own_lower_cap_and_lists_the_same_hits(
    meeting, mic, monkeypatch
):
    lines = ["pricing first", "the price", "prices again", "no deal", "no way", "no match"]
    for n, text in enumerate(lines):
        say(mic, text, 1_000 * (n + 1), final=True)
    uncapped = [h.entry.pk for h in hits("pric*", meeting).hits]
    monkeypatch.setattr(search, "PREFIX_COUNT_CAP", 2)

    capped = hits("pric*", meeting)
    assert (capped.capped, capped.total_label) == (True, "2+")
    assert [h.entry.pk for h in capped.hits] == uncapped and len(uncapped) == 3
    # Excluded, a prefix costs the same to test, so it is counted the same way.
    assert hits("no -pric*", meeting).total_label == "2+"
    # Without a prefix the cap is COUNT_CAP's.
    assert hits("no", meeting).total_label == "3"


def test_a_prefix_longer_than_the_indexed_ones_finds_only_its_words(meeting, mic):
    for n, text in enumerate(["the deployment is done", "we deploy today", "depletion of funds",
                              "a deep dive", "deployed and depleted"]):  # fmt: skip
        say(mic, text, 1_000 * (n + 1), final=True)
    query = search_text.parse("deploy*")

    assert found("deploy*", meeting) == [
        "deployed and depleted", "we deploy today", "the deployment is done"
    ]  # fmt: skip
    assert [h.snippet.count("<mark>") for h in hits("deploy*", meeting).hits] == [1, 1, 1]
    assert search.search(query, [meeting.pk], count_cap=1).total_label == "1+"
    # FTS5 is asked for the indexed prefix ("depl"), the row test keeps the query's words.
    assert '"depl"*' in query.to_fts5([meeting.pk], longest_prefix=4)
    assert query.cuts_prefix(4) and not search_text.parse("depl*").cuts_prefix(4)
    # An excluded prefix is kept whole: cut, it would leave out "depletion" too.
    assert found("funds OR today -deploy*", meeting) == ["depletion of funds"]
    assert '"deploy"*' in search_text.parse("x -deploy*").to_fts5(longest_prefix=4)


@pytest.mark.parametrize(
    "text",
    ["prices", '"annual plan"', "pric*", "disc*", "enterp*", "cafe", "über", "東京", "ПРИВЕТ",
     "e-mail", '"3.5"', "draft -pricing", "pricing -draft", "march OR moscow", "to be or not to be",
     "the", "pric* -draft"],
)  # fmt: skip
def test_the_row_by_row_test_finds_what_the_full_text_index_finds(corpus, text):
    query = search_text.parse(text)
    by_index = set(search.matches(query, [corpus.pk]).values_list("pk", flat=True))
    by_row = set(
        SearchEntry.objects.filter(session=corpus)
        .filter(search.matching_row(query))
        .values_list("pk", flat=True)
    )
    assert by_row == by_index


def in_turn(rows_by_session: dict[int, list[tuple[int, int]]], wanted: int):
    """search._in_turn over stored (id, start_ms) rows: what it returns, which sessions it
    read."""
    read: list[int] = []

    def newest(sessions, offset, limit):
        read.extend(sessions)
        rows = sorted((r for s in sessions for r in rows_by_session[s]),
                      key=lambda r: (r[1], r[0]), reverse=True)  # fmt: skip
        return rows[offset : offset + limit]

    latest = {s: max(start for _, start in rows) for s, rows in rows_by_session.items()}
    return search._in_turn(newest, latest, wanted), read


def test_past_the_cap_sessions_are_read_in_turn_until_none_can_hold_a_row_of_the_page():
    later, earlier = [(10, 900), (11, 800)], [(20, 700), (21, 100)]
    assert in_turn({1: earlier, 2: later}, 2) == ([(10, 900), (11, 800)], [2])
    # A session whose newest entry is as new as the page's last row may hold a tie.
    tie = [(12, 800), (22, 50)]
    assert in_turn({1: later, 2: tie, 3: earlier}, 2) == ([(10, 900), (12, 800)], [1, 2, 3])
    # Too few rows so far: the next sessions are read, one, then two at a time, then four.
    sessions = {1: later, 2: earlier, 3: [(30, 1)], 4: [(40, 0)]}
    assert in_turn(sessions, 5) == ([*later, *earlier, (30, 1)], [1, 2, 3])
    assert in_turn(sessions, 6)[1] == [1, 2, 3, 4]
