"""The live page for the owner, the read-only share page, renaming speakers, and what VideoDB
sends being shown as text in every partial."""

from __future__ import annotations

import re
from datetime import UTC, datetime

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
        assert "Host</span>" in transcript and "Others</span>" in transcript
        assert 'class="line interim"' in transcript  # theirs is still interim
        assert f'id="ins-{slide.pk}"' in page.split('id="screen"')[1]
        assert f'id="ins-{decision.pk}"' in page.split('id="insights"')[1]
        alerts = page.split('id="alerts"')[1]
        assert f'id="alert-{alert.pk}"' in alerts and "confidence 87%" in alerts
        assert "Pricing discussed" in alerts and "pricing_discussed" not in alerts
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
        assert "This meeting has ended" in page and "Read the recap" in page

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

    def test_an_empty_name_goes_back_to_the_owner_s_name(self, owner_client, owner, mic) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label="Priya")
        owner_client.post(self.url(mic), {"speaker_label": ""})
        mic.refresh_from_db()
        assert mic.speaker == str(owner) and str(owner) not in {"", "Me"}

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
        # The brief's pause reason can quote VideoDB's error: its status line shows it.
        CaptureSession.objects.filter(pk=meeting.pk).update(brief_paused=HOSTILE)
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


class TestRepetitionIsShownOnce:
    """An insight VideoDB repeats (both channels, the next windows) is one element, and an
    unchanged screen one span: the page load, a push and a replay render the same group
    under its first copy's id, each carrying the seq of the change it shows."""

    START_MS = 1_741_080_600_000

    @pytest.fixture
    def started(self, meeting) -> CaptureSession:
        CaptureSession.objects.filter(pk=meeting.pk).update(
            started_at=datetime.fromtimestamp(self.START_MS / 1000, tz=UTC)
        )
        meeting.refresh_from_db()
        return meeting

    def at(self, seconds: float) -> int:
        return self.START_MS + int(seconds * 1000)

    def items(self, html: str) -> list[str]:
        return re.findall(r'<li id="(ins-\d+)"', html)

    def without_oob(self, html: str) -> str:
        return html.replace(' hx-swap-oob="true"', "").strip()

    def test_the_page_shows_a_repeated_insight_once_with_its_copies_and_channels(
        self, owner_client, started, mic, system_audio
    ) -> None:
        first = note(mic, "Decision: ship on Friday", self.at(30))
        note(system_audio, "Decision: ship on Friday", self.at(30))
        note(mic, "Decision: ship on Friday", self.at(60))
        other = note(system_audio, "Action: Dana sends the figures", self.at(60))

        insights = detail(owner_client, started).split('id="insights"')[1].split("</ol>")[0]

        assert self.items(insights) == [f"ins-{first.pk}", f"ins-{other.pk}"]
        assert insights.count("Decision: ship on Friday") == 1
        assert "reported 3 times (Host, Others)" in insights
        assert f'data-seq="{other.seq - 1}"' in insights  # its newest copy's change

    def test_the_page_shows_an_unchanged_screen_as_one_span(
        self, owner_client, started, screen
    ) -> None:
        span = [note(screen, "Pricing page: three tiers", self.at(s), kind="visual")
                for s in (10, 20, 30, 40)]  # fmt: skip
        table = note(screen, "Comparison spreadsheet", self.at(50), kind="visual")

        listed = detail(owner_client, started).split('id="screen"')[1].split("</ol>")[0]

        assert self.items(listed) == [f"ins-{span[0].pk}", f"ins-{table.pk}"]
        assert '<span class="offset">00:10\u201300:45</span>' in listed
        assert "described 4 times" in listed

    def test_a_repeat_pushed_updates_its_group_in_place_carrying_its_seq(
        self, started, mic, system_audio
    ) -> None:
        first = note(mic, "Decision: ship on Friday", self.at(30))
        copy = note(system_audio, "Decision: ship on Friday", self.at(30))

        update = broadcast.message(copy, started)

        assert update["seq"] == copy.seq
        assert self.items(update["html"]) == [f"ins-{first.pk}"]
        assert f'data-seq="{copy.seq}"' in update["html"]
        assert 'hx-swap-oob="true"' in update["html"]
        assert "reported 2 times (Host, Others)" in update["html"]

    def test_a_new_insight_pushed_is_a_new_element(self, started, mic) -> None:
        note(mic, "Decision: ship on Friday", self.at(30))
        new = note(mic, "Action: Dana sends the figures", self.at(60))

        html = broadcast.message(new, started)["html"]

        assert self.items(html) == [f"ins-{new.pk}"] and "reported" not in html

    def test_the_page_load_a_push_and_a_replay_agree(
        self, started, mic, system_audio, screen
    ) -> None:
        copies = [
            note(mic, "Decision: ship on Friday", self.at(30)),
            note(system_audio, "Decision: ship on Friday", self.at(30)),
            note(screen, "Pricing page", self.at(30), kind="visual"),
            note(screen, "Pricing page", self.at(40), kind="visual"),
            note(mic, "Decision: ship on Friday", self.at(60)),
        ]
        pushed = {
            self.items(html)[0]: self.without_oob(html)
            for html in (broadcast.message(copies[-1], started)["html"],
                         broadcast.message(copies[3], started)["html"])
        }  # fmt: skip
        loaded = broadcast.snapshot(started)
        on_load = [self.without_oob(html) for html in [*loaded["insights"], *loaded["screen"]]]
        replayed = [self.without_oob(u["html"]) for u in broadcast.replay(started, after_seq=0)]

        assert sorted(on_load) == sorted(pushed.values()) == sorted(replayed)

    def test_a_replay_after_reconnect_sends_each_changed_group_once(
        self, started, mic, system_audio
    ) -> None:
        first = note(mic, "Decision: ship on Friday", self.at(30))
        seen = first.seq
        note(system_audio, "Decision: ship on Friday", self.at(30))
        last = note(mic, "Decision: ship on Friday", self.at(60))

        (update,) = broadcast.replay(started, after_seq=seen)

        assert update["seq"] == last.seq
        assert self.items(update["html"]) == [f"ins-{first.pk}"]
        assert f'data-seq="{last.seq}"' in update["html"]
        assert "reported 3 times" in update["html"]
        assert broadcast.replay(started, after_seq=last.seq) == []

    def test_a_late_description_that_starts_a_span_earlier_replaces_its_element(
        self, started, screen
    ) -> None:
        live = [note(screen, "Pricing page", self.at(s), kind="visual") for s in (20, 30)]
        late = note(screen, "Pricing page", self.at(10), kind="visual")  # from a backfill

        html = broadcast.message(late, started)["html"]

        assert f'<li id="ins-{live[0].pk}" data-seq="{late.seq}" hx-swap-oob="delete">' in html
        assert self.items(html) == [f"ins-{live[0].pk}", f"ins-{late.pk}"]
        assert "described 3 times" in html and "00:10\u201300:35" in html
        # A reconnecting browser that saw only the live copies is told the same.
        replayed = "".join(u["html"] for u in broadcast.replay(started, after_seq=live[1].seq))
        assert f'id="ins-{live[0].pk}" data-seq="{late.seq}" hx-swap-oob="delete"' in replayed
        assert "described 3 times" in replayed

    def test_finding_a_new_insights_group_is_one_query(
        self, started, mic, system_audio, screen, django_assert_num_queries
    ) -> None:
        for n in range(40):  # an hour of other insights and screens before
            note(mic, f"Topic {n}: {n * 7919} widgets", self.at(90 * n))
            note(screen, f"Slide {n}: {n * 104729} gadgets", self.at(90 * n), kind="visual")
        for n in range(1, 5):
            note(mic, "Decision: ship on Friday", self.at(3600 + 30 * n))
            note(system_audio, "Decision: ship on Friday", self.at(3600 + 30 * n))
            note(screen, "Pricing page", self.at(3600 + 10 * n), kind="visual")
        newest = note(mic, "Decision: ship on Friday", self.at(3750))
        slide = note(screen, "Pricing page", self.at(3650), kind="visual")

        with django_assert_num_queries(1):
            spoken = broadcast.message(newest, started)["html"]
        with django_assert_num_queries(1):
            shown = broadcast.message(slide, started)["html"]

        assert "reported 9 times" in spoken and "described 5 times" in shown

    def test_a_group_longer_than_the_first_read_is_found_whole(
        self, started, mic, system_audio, screen
    ) -> None:
        for n in range(40):  # twenty minutes of the same insight and the same screen
            note(mic if n % 2 else system_audio, "Decision: ship on Friday", self.at(30 * n))
            note(screen, "Pricing page", self.at(30 * n), kind="visual")
        first = note(system_audio, "Decision: ship on Friday", self.at(1200))
        slide = note(screen, "Pricing page", self.at(1200), kind="visual")

        spoken = broadcast.message(first, started)["html"]
        shown = broadcast.message(slide, started)["html"]

        assert "reported 41 times" in spoken and "described 41 times" in shown
        assert len(self.items(spoken)) == len(self.items(shown)) == 1

    def test_the_copies_and_channels_of_a_group_are_escaped(
        self, started, mic, system_audio
    ) -> None:
        RTStream.objects.filter(pk=mic.pk).update(speaker_label=HOSTILE)
        note(system_audio, HOSTILE, self.at(30))
        copy = note(RTStream.objects.get(pk=mic.pk), HOSTILE, self.at(30))

        html = broadcast.message(copy, started)["html"]

        assert "<img" not in html and 'hx-get="/x"' not in html
        assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # the text, the channel
