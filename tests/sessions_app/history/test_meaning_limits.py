"""Search by meaning costs VideoDB up to 13 searches a request: the query sent is capped,
and each user (or, without an account, each share link) may ask only so often; past that
the page says so and keeps the keyword matches, without asking VideoDB."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from sessions_app.history import meaning, search
from sessions_app.models import ShareLink

pytestmark = pytest.mark.django_db


@pytest.fixture
def streamed(meeting, make_stream):
    make_stream(meeting, "mic:default")
    make_stream(meeting, "system_audio:default")
    return meeting


def asked(videodb) -> int:
    """How many requests VideoDB has had so far."""
    return sum(videodb.control.request_counts().values())


def by_meaning(client: Client, q: str = "pricing") -> str:
    return client.get(reverse("search"), {"q": q, "meaning": "1"}).content.decode()


def test_a_long_query_is_cut_before_it_is_sent_and_the_page_says_so(streamed, videodb) -> None:
    found = meaning.ask("pricing " * 1000, [streamed.pk], search.Filters())
    assert found.notice.startswith(
        f"Search by meaning used only the first {meaning.MAX_QUERY_CHARS} characters."
    )


def test_a_user_past_the_limit_is_told_and_videodb_is_not_asked(
    streamed, videodb, owner_client, settings
) -> None:
    settings.MEANING_SEARCH_LIMIT = 2
    start = asked(videodb)
    for _ in range(2):
        assert "limited to" not in by_meaning(owner_client)
    before = asked(videodb)
    assert before > start  # those two did ask VideoDB
    body = by_meaning(owner_client)
    assert "Search by meaning is limited to 2 searches every 1 minute" in body
    assert "these are the keyword matches only. Try again in" in body
    assert asked(videodb) == before


def test_visitors_with_a_link_share_its_allowance_whoever_opens_it(
    streamed, videodb, owner, settings
) -> None:
    settings.MEANING_SEARCH_LIMIT = 2
    link = ShareLink.objects.create(session=streamed, created_by=owner)
    visitors = [Client(), Client(), Client()]
    for visitor in visitors:
        assert visitor.get(reverse("share-page", args=[link.token])).status_code == 200
    assert "limited to" not in by_meaning(visitors[0])
    assert "limited to" not in by_meaning(visitors[1])
    before = asked(videodb)
    assert "limited to 2 searches" in by_meaning(visitors[2])  # a fresh cookie, same link
    assert asked(videodb) == before


def test_one_users_searches_do_not_use_up_anothers(
    streamed, videodb, owner_client, stranger, settings
) -> None:
    settings.MEANING_SEARCH_LIMIT = 1
    by_meaning(owner_client)
    assert "limited to" in by_meaning(owner_client)
    theirs = Client()
    theirs.force_login(stranger)
    assert "limited to" not in by_meaning(theirs)
