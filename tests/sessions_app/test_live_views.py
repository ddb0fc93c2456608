"""The live page for the owner, the read-only share page, renaming speakers, and what VideoDB
sends being shown as text in every partial."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sessions_app.live import broadcast
from sessions_app.models import CaptureSession, RTStream
from tests.sessions_app.conftest import HOSTILE, fire, note, say

pytestmark = pytest.mark.django_db


def detail(client, session: CaptureSession) -> str:
    response = client.get(reverse("session-detail", args=[session.pk]))
    assert response.status_code == 200
    return response.content.decode()


class TestOwnersLivePage:
    def test_it_shows_the_current_items_in_their_lists_and_where_to_resume(
        self, owner_client, meeting, mic, system_audio, screen
    ) -> None:
        mine = say(mic, "Let's start with the roadmap", 1000, final=True)
        theirs = say(system_audio, "Sounds good", 3000)
        slide = note(screen, "Q3 roadmap slide", 2000, kind="visual")
        decision = note(mic, "Decision: ship on Friday", 4000)
        alert = fire(mic, "pricing_discussed", 5000, confidence=0.87)

        page = detail(owner_client, meeting)

        assert f'data-last-seq="{alert.seq}"' in page
        assert f'ws-connect="/ws/sessions/{meeting.pk}/"' in page
        transcript = page.split('id="transcript"')[1].split("</ol>")[0]
        assert transcript.index(f'id="seg-{mine.pk}"') < transcript.index(f'id="seg-{theirs.pk}"')
        assert "Me</span>" in transcript and "Others</span>" in transcript
        assert 'class="line interim"' in transcript  # theirs is still interim
        assert f'id="ins-{slide.pk}"' in page.split('id="screen"')[1]
        assert f'id="ins-{decision.pk}"' in page.split('id="insights"')[1]
        alerts = page.split('id="alerts"')[1]
        assert f'id="alert-{alert.pk}"' in alerts and "confidence 87%" in alerts
        assert 'role="alert"' in page and "Alert: pricing_discussed" in page
        # Rendered on the page, items are not out-of-band fragments.
        assert "hx-swap-oob" not in page.split('id="live-grid"')[-1].split("</main>")[0]
        assert f'id="health-{mic.pk}"' in page and 'data-silence-seconds="20"' in page

    def test_it_keeps_the_status_hand_off_and_adds_speakers_and_sharing(
        self, owner_client, meeting, mic
    ) -> None:
        page = detail(owner_client, meeting)
        assert 'id="session-status"' in page and 'id="handoff"' in page
        assert f'id="speaker-form-{mic.pk}"' in page
        assert 'id="sharing"' in page

    def test_scripts_carry_the_nonce_and_the_ws_extension_is_loaded(
        self, owner_client, meeting
    ) -> None:
        page = detail(owner_client, meeting)
        scripts = re.findall(r"<script[^>]*>", page)
        assert any("hx-ws-2" in tag for tag in scripts)
        assert any("copilot/live" in tag for tag in scripts)
        assert all("nonce=" in tag and "src=" in tag for tag in scripts)
        assert "style=" not in page

    def test_a_finished_session_is_shown_from_the_database_without_a_socket(
        self, owner_client, make_session, owner, make_stream
    ) -> None:
        done = make_session(owner, status=CaptureSession.Status.STOPPED)
        segment = say(make_stream(done, "mic:default"), "Thanks all", 1000, final=True)
        page = detail(owner_client, done)
        assert f'id="seg-{segment.pk}"' in page
        assert "ws-connect" not in page
        assert "This session has ended" in page

    def test_strangers_get_404(self, client, stranger, meeting) -> None:
        client.force_login(stranger)
        assert client.get(reverse("session-detail", args=[meeting.pk])).status_code == 404

    def test_the_status_card_leaves_the_banner_to_the_socket(self, owner_client, meeting) -> None:
        html = owner_client.get(reverse("session-status", args=[meeting.pk])).content.decode()
        assert 'id="session-status"' in html and 'id="live-status"' not in html

    def test_a_channel_that_appears_later_has_a_place_in_the_health_panel(
        self, meeting, mic
    ) -> None:
        row = broadcast.render_health(mic, session=meeting)
        assert 'data-list="health"' in row and f'data-order="{mic.pk}"' in row


class TestSharePage:
    def test_a_valid_link_shows_the_live_view_read_only(
        self, client, meeting, mic, share_link
    ) -> None:
        say(mic, "Welcome", 1000, final=True)
        response = client.get(reverse("share-page", args=[share_link.token]))
        assert response.status_code == 200
        page = response.content.decode()
        assert meeting.title in page and "Welcome" in page
        assert f'ws-connect="/ws/sessions/{meeting.pk}/?share={share_link.token}"' in page
        for owners_only in ('id="handoff"', "speaker-form", 'id="sharing"', meeting.videodb_id,
                            "Regenerate token", 'id="session-status"'):  # fmt: skip
            assert owners_only not in page
        assert response["Cache-Control"].startswith("max-age=0")

    @pytest.mark.parametrize("which", ["revoked_link", "expired_link"])
    def test_revoked_and_expired_links_look_unknown(self, client, which, request) -> None:
        link = request.getfixturevalue(which)
        assert client.get(reverse("share-page", args=[link.token])).status_code == 404

    def test_an_unknown_token_is_404(self, client, meeting) -> None:
        assert client.get(reverse("share-page", args=["nope"])).status_code == 404


class TestRenameSpeaker:
    def url(self, stream: RTStream) -> str:
        return reverse("stream-speaker", args=[stream.session_id, stream.pk])

    def test_the_owner_renames_and_every_line_is_relabelled(
        self, owner_client, meeting, mic, system_audio
    ) -> None:
        say(mic, "First", 1000, final=True)
        say(mic, "Second", 2000, final=True)
        response = owner_client.post(
            self.url(mic), {"speaker_label": "  Priya  "}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        assert f'id="speaker-form-{mic.pk}"' in response.content.decode()
        mic.refresh_from_db()
        assert mic.speaker_label == "Priya"
        page = detail(owner_client, meeting)
        assert page.count(f'<span class="speaker" data-stream="{mic.pk}">Priya</span>') >= 3
        assert f'<span class="speaker" data-stream="{system_audio.pk}">Others</span>' in page

    def test_an_empty_name_goes_back_to_the_default(self, owner_client, mic) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label="Priya")
        owner_client.post(self.url(mic), {"speaker_label": ""})
        mic.refresh_from_db()
        assert (mic.speaker_label, mic.speaker) == ("", "Me")

    def test_a_too_long_name_is_refused(self, owner_client, mic) -> None:
        response = owner_client.post(
            self.url(mic), {"speaker_label": "x" * 101}, headers={"HX-Request": "true"}
        )
        assert 'role="alert"' in response.content.decode()
        mic.refresh_from_db()
        assert mic.speaker_label == ""

    def test_strangers_get_404(self, client, stranger, mic) -> None:
        client.force_login(stranger)
        assert client.post(self.url(mic), {"speaker_label": "x"}).status_code == 404
        mic.refresh_from_db()
        assert mic.speaker_label == ""

    def test_a_stream_of_another_session_is_404(
        self, owner_client, owner, make_session, make_stream, meeting
    ) -> None:
        other = make_stream(make_session(owner), "mic:default")
        url = reverse("stream-speaker", args=[meeting.pk, other.pk])
        assert owner_client.post(url, {"speaker_label": "x"}).status_code == 404

    def test_a_viewer_cannot_rename(self, client, mic, share_link) -> None:
        client.get(reverse("share-page", args=[share_link.token]))
        response = client.post(self.url(mic), {"speaker_label": "Mallory"})
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
        mic.refresh_from_db()
        assert mic.speaker_label == ""

    def test_only_post(self, owner_client, mic) -> None:
        assert owner_client.get(self.url(mic)).status_code == 405


class TestHostileTextFromVideoDB:
    """VideoDB's text is data: every partial prints it escaped, pushed or on the page."""

    def test_every_partial_escapes_it(self, owner_client, meeting, mic) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label=HOSTILE)
        mic.refresh_from_db()
        items = [
            say(mic, HOSTILE, 1000),
            note(mic, HOSTILE, 1000, kind="visual"),
            note(mic, HOSTILE, 2000),
            fire(mic, HOSTILE[:128], 3000, text=HOSTILE),
            mic,
        ]
        rendered = [broadcast.render(item, session=meeting, oob=oob) for item in items
                    for oob in (True, False)]  # fmt: skip
        rendered += [
            broadcast.render_health(mic, session=meeting),
            *broadcast.current_state(meeting),
        ]
        rendered.append(detail(owner_client, meeting))
        for html in rendered:
            assert "<img" not in html
            assert 'hx-get="/x"' not in html
            if 'id="live-status"' not in html:  # the one partial with no text from VideoDB
                assert "&lt;img src=x onerror=alert(1)&gt;" in html
        page = rendered[-1]
        # The hostile </div> did not close anything: the board's structure is intact.
        assert page.count("<div") - page.count("&lt;div") == page.count("</div>")
