"""Who may view a session, asked by the pages (``viewable``, ``owned_session``) and by the
live socket (``live_viewer``): one rule, so they agree."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import ShareLink
from sessions_app.viewers import access, sharing
from sessions_app.viewers.access import Refusal

pytestmark = pytest.mark.django_db


def request_by(user):
    request = RequestFactory().get("/")
    request.user = user
    request.session = {}
    return request


def open_share_page(client, user, link) -> None:
    client.force_login(user)
    assert client.get(reverse("share-page", args=[link.token])).status_code == 200


class TestOwnedSession:
    def test_the_owner_gets_their_session(self, owner, meeting) -> None:
        assert access.owned_session(request_by(owner), meeting.pk) == meeting

    def test_anyone_else_gets_404_even_a_user_it_was_shared_with(
        self, client, meeting, share_link, make_user, stranger
    ) -> None:
        vera = make_user("vera")
        open_share_page(client, vera, share_link)
        for user in (vera, stranger):
            with pytest.raises(Http404):
                access.owned_session(request_by(user), meeting.pk)

    def test_an_unknown_session_is_404(self, owner, meeting) -> None:
        with pytest.raises(Http404):
            access.owned_session(request_by(owner), meeting.pk + 1000)


class TestLiveViewer:
    def test_the_owner_watches_through_no_link(self, owner, meeting) -> None:
        viewer = access.live_viewer(owner, meeting.pk)
        assert (viewer.session, viewer.link_ids, viewer.expires_at) == (meeting, frozenset(), None)

    def test_a_token_decides_alone(self, owner, meeting, share_link, make_session) -> None:
        viewer = access.live_viewer(AnonymousUser(), meeting.pk, share_link.token)
        assert (viewer.session, viewer.link_ids) == (meeting, {share_link.pk})
        other = make_session(owner)
        assert access.live_viewer(owner, other.pk, share_link.token) is Refusal.BAD_LINK
        assert access.live_viewer(owner, meeting.pk, "unknown") is Refusal.BAD_LINK

    def test_anonymous_without_a_token_must_sign_in(self, meeting) -> None:
        assert access.live_viewer(AnonymousUser(), meeting.pk) is Refusal.SIGN_IN

    def test_a_signed_in_user_watches_through_every_valid_link_they_opened(
        self, client, owner, meeting, make_user
    ) -> None:
        vera = make_user("vera")
        soon = timezone.now() + timedelta(hours=1)
        later = timezone.now() + timedelta(days=1)
        first = sharing.create_link(meeting, owner, expires_at=soon)
        second = sharing.create_link(meeting, owner, expires_at=later)
        for link in (first, second):
            open_share_page(client, vera, link)
        viewer = access.live_viewer(vera, meeting.pk)
        assert (viewer.link_ids, viewer.expires_at) == ({first.pk, second.pk}, later)

        never = sharing.create_link(meeting, owner)
        open_share_page(client, vera, never)
        assert access.live_viewer(vera, meeting.pk).expires_at is None

    def test_a_user_whose_links_were_revoked_or_who_has_none_is_not_found(
        self, client, meeting, share_link, make_user, stranger
    ) -> None:
        vera = make_user("vera")
        open_share_page(client, vera, share_link)
        sharing.revoke(share_link)
        assert access.live_viewer(vera, meeting.pk) is Refusal.NOT_FOUND
        assert access.live_viewer(stranger, meeting.pk) is Refusal.NOT_FOUND
        assert access.live_viewer(stranger, meeting.pk + 1000) is Refusal.NOT_FOUND

    def test_the_socket_and_the_pages_agree_for_every_signed_in_user(
        self, client, owner, meeting, share_link, make_user, stranger
    ) -> None:
        still_shared, lapsed, expired = make_user("vera"), make_user("lapsed"), make_user("ed")
        for user in (still_shared, lapsed):
            open_share_page(client, user, share_link)
        open_share_page(client, still_shared, sharing.create_link(meeting, owner))
        open_share_page(client, expired, sharing.create_link(meeting, owner))
        sharing.revoke(share_link)
        ShareLink.objects.filter(viewers__user=expired).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        everyone = (owner, still_shared, lapsed, expired, stranger)
        on_pages = [access.viewable(request_by(u)).filter(pk=meeting.pk).exists() for u in everyone]
        on_socket = [isinstance(access.live_viewer(u, meeting.pk), access.Viewer) for u in everyone]
        assert on_pages == on_socket == [True, True, False, False, False]


class TestMayAsk:
    """Asking a session questions: its owner, and viewers whose link allows it."""

    def test_the_owner_asks_through_no_link(self, owner, meeting) -> None:
        assert access.may_ask(request_by(owner), meeting) == access.Asker(owner, None)

    def test_a_viewer_asks_only_through_a_valid_link_that_allows_it(
        self, client, owner, meeting, make_user
    ) -> None:
        vera = make_user("vera")
        quiet = sharing.create_link(meeting, owner)
        open_share_page(client, vera, quiet)
        assert access.may_ask(request_by(vera), meeting) is None

        asking = sharing.create_link(meeting, owner, can_ask=True)
        open_share_page(client, vera, asking)
        assert access.may_ask(request_by(vera), meeting) == access.Asker(vera, asking)

        sharing.revoke(asking)
        assert access.may_ask(request_by(vera), meeting) is None

    def test_a_browser_without_an_account_asks_through_the_link_it_remembers(
        self, owner, meeting, make_session
    ) -> None:
        asking = sharing.create_link(meeting, owner, can_ask=True)
        request = request_by(AnonymousUser())
        assert access.may_ask(request, meeting) is None
        request.session[access.LINKS_KEY] = [asking.pk]
        assert access.may_ask(request, meeting) == access.Asker(None, asking)
        # A link lets its holder ask its own session only.
        assert access.may_ask(request, make_session(owner)) is None
