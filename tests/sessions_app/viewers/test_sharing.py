"""Share links: the owner creates them (never, 1 hour, 1 day or 7 days) and revokes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import ShareLink
from sessions_app.viewers import sharing

pytestmark = pytest.mark.django_db


def create_url(session) -> str:
    return reverse("share-link-create", args=[session.pk])


def revoke_url(link) -> str:
    return reverse("share-link-revoke", args=[link.session_id, link.pk])


class TestCreate:
    @pytest.mark.parametrize(
        ("choice", "lifetime"),
        [("never", None), ("1h", timedelta(hours=1)), ("1d", timedelta(days=1)),
         ("7d", timedelta(days=7))],
    )  # fmt: skip
    def test_the_owner_creates_a_viewer_link(
        self, owner_client, owner, meeting, choice, lifetime
    ) -> None:
        before = timezone.now()
        response = owner_client.post(create_url(meeting), {"expires": choice})
        assert response.status_code == 302
        link = ShareLink.objects.get()
        assert (link.session, link.created_by, link.role) == (meeting, owner, "viewer")
        if lifetime is None:
            assert link.expires_at is None
        else:
            assert before + lifetime <= link.expires_at <= timezone.now() + lifetime

    def test_with_htmx_the_list_comes_back_with_the_new_links_url(
        self, owner_client, meeting
    ) -> None:
        response = owner_client.post(
            create_url(meeting), {"expires": "1d"}, headers={"HX-Request": "true"}
        )
        link = ShareLink.objects.get()
        html = response.content.decode()
        assert html.lstrip().startswith('<section id="sharing"')
        assert f"http://testserver/s/{link.token}/" in html
        assert "Active" in html and "Revoke" in html

    def test_an_unknown_expiry_creates_nothing(self, owner_client, meeting) -> None:
        owner_client.post(create_url(meeting), {"expires": "forever"})
        assert not ShareLink.objects.exists()

    def test_strangers_get_404_and_create_nothing(self, client, stranger, meeting) -> None:
        client.force_login(stranger)
        assert client.post(create_url(meeting), {"expires": "never"}).status_code == 404
        assert not ShareLink.objects.exists()

    def test_anonymous_is_sent_to_log_in(self, client, meeting) -> None:
        assert client.post(create_url(meeting), {"expires": "never"}).status_code == 302
        assert not ShareLink.objects.exists()


class TestRevoke:
    def test_the_owner_revokes_and_the_link_stops_working(
        self, owner_client, meeting, share_link
    ) -> None:
        share = reverse("share-page", args=[share_link.token])
        assert owner_client.get(share).status_code == 200
        response = owner_client.post(revoke_url(share_link), headers={"HX-Request": "true"})
        assert response.status_code == 200
        assert "Revoked" in response.content.decode()
        share_link.refresh_from_db()
        assert share_link.revoked_at is not None
        assert owner_client.get(share).status_code == 404

    def test_revoking_twice_keeps_the_first_time(self, owner_client, share_link) -> None:
        owner_client.post(revoke_url(share_link))
        share_link.refresh_from_db()
        first = share_link.revoked_at
        owner_client.post(revoke_url(share_link))
        share_link.refresh_from_db()
        assert share_link.revoked_at == first

    def test_strangers_get_404_and_revoke_nothing(self, client, stranger, share_link) -> None:
        client.force_login(stranger)
        assert client.post(revoke_url(share_link)).status_code == 404
        share_link.refresh_from_db()
        assert share_link.revoked_at is None

    def test_a_link_of_another_session_is_404(
        self, owner_client, owner, make_session, share_link
    ) -> None:
        other = make_session(owner)
        url = reverse("share-link-revoke", args=[other.pk, share_link.pk])
        assert owner_client.post(url).status_code == 404


class TestTheOwnersList:
    def test_it_lists_links_with_created_expires_and_state(
        self, owner_client, meeting, share_link, expired_link, revoked_link
    ) -> None:
        page = owner_client.get(reverse("session-detail", args=[meeting.pk])).content.decode()
        table = page.split('id="sharing"')[1].split("</section>")[0]
        assert table.count('<li id="share-link-') == 3
        assert "Active" in table and "Expired" in table and "Revoked" in table
        # Only the working link offers its URL and a Revoke button.
        assert table.count("Revoke</button>") == 1
        assert share_link.token in table
        assert expired_link.token not in table and revoked_link.token not in table


def test_resolve_treats_revoked_expired_and_unknown_alike(
    share_link, expired_link, revoked_link
) -> None:
    assert sharing.resolve(share_link.token) == share_link
    assert sharing.resolve(expired_link.token) is None
    assert sharing.resolve(revoked_link.token) is None
    assert sharing.resolve("unknown") is None
