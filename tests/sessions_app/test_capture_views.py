"""The capture pages: creating a session, the desktop hand-off, the JSON token endpoint, the
simulated meeting and alert rules; owners only, and the API key never leaves the server."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from sessions_app.models import Alert, AlertRule, CaptureSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def created(videodb, owner_client) -> CaptureSession:
    response = owner_client.post(
        reverse("session-new"),
        {"title": "Launch sync", "audio_prompt": "Decisions", "visual_prompt": "Screen"},
    )
    assert response.status_code == 302
    return CaptureSession.objects.get()


class TestNewSession:
    def test_creating_a_session_registers_it_with_videodb_and_opens_its_page(
        self, videodb, owner_client, owner
    ) -> None:
        rule = AlertRule.objects.create(owner=owner, label="pricing", prompt="Price talk")
        response = owner_client.post(
            reverse("session-new"),
            {"title": "Launch sync", "audio_prompt": "Decisions", "visual_prompt": "Screen",
             "alert_rules": [rule.pk]},
        )  # fmt: skip
        session = CaptureSession.objects.get()
        assert response.url == reverse("session-detail", args=[session.pk])
        assert session.videodb_id in {s["session_id"] for s in videodb.control.state()["sessions"]}
        assert list(session.alert_rules.all()) == [rule]

    def test_another_users_rule_cannot_be_attached(self, videodb, owner_client, stranger) -> None:
        theirs = AlertRule.objects.create(owner=stranger, label="x", prompt="Their rule")
        response = owner_client.post(
            reverse("session-new"), {"title": "Mine", "alert_rules": [theirs.pk]}
        )
        assert response.status_code == 200
        assert "alert_rules" in response.context["form"].errors
        assert not CaptureSession.objects.exists()

    def test_a_blank_title_is_refused_with_a_message(self, videodb, owner_client) -> None:
        response = owner_client.post(reverse("session-new"), {"title": "   "})
        assert response.status_code == 200
        assert "title" in response.context["form"].errors
        assert not CaptureSession.objects.exists()

    def test_videodb_being_down_shows_an_error_and_keeps_nothing(
        self, videodb, owner_client
    ) -> None:
        videodb.control.inject_faults(fail_count=20, status=503)
        response = owner_client.post(reverse("session-new"), {"title": "Launch sync"})
        assert response.status_code == 200
        assert "Nothing was created" in response.content.decode()
        assert not CaptureSession.objects.exists()

    def test_anonymous_users_are_sent_to_log_in(self, client) -> None:
        response = client.get(reverse("session-new"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


class TestDesktopHandOff:
    def test_the_page_shows_session_id_token_expiry_and_snippet_but_never_the_api_key(
        self, created, owner_client, videodb
    ) -> None:
        page = owner_client.get(reverse("session-detail", args=[created.pk])).content.decode()
        assert created.videodb_id in page
        assert "CaptureClient(client_token=client_token)" in page
        assert f'capture_session_id="{created.videodb_id}"' in page
        assert "Expires" in page
        assert videodb.api_key not in page

    def test_each_request_mints_a_new_token(self, created, owner_client) -> None:
        url = reverse("api-client-token", args=[created.pk])
        first = owner_client.post(url).json()
        second = owner_client.post(url).json()
        assert first["capture_session_id"] == created.videodb_id
        assert first["client_token"] != second["client_token"]

    def test_the_json_endpoint_never_contains_the_api_key_and_is_not_cached(
        self, created, owner_client, videodb
    ) -> None:
        response = owner_client.post(reverse("api-client-token", args=[created.pk]))
        assert response.status_code == 200
        assert videodb.api_key not in response.content.decode()
        assert set(response.json()) == {"capture_session_id", "client_token", "expires_at"}
        assert "no-store" in response["Cache-Control"]

    def test_regenerating_returns_the_hand_off_fragment_with_a_new_token(
        self, created, owner_client
    ) -> None:
        url = reverse("session-token", args=[created.pk])
        first = owner_client.post(url, headers={"HX-Request": "true"}).content.decode()
        second = owner_client.post(url, headers={"HX-Request": "true"}).content.decode()
        assert first.strip().startswith('<details id="handoff"') and first != second
        assert "<html" not in first

    @pytest.mark.parametrize(
        "name", ["session-detail", "session-status", "session-token", "api-client-token",
                 "session-simulate"],
    )  # fmt: skip
    def test_a_stranger_gets_a_404_for_someone_elses_session(
        self, created, client, stranger, name: str
    ) -> None:
        client.force_login(stranger)
        url = reverse(name, args=[created.pk])
        response = (
            client.post(url)
            if name not in {"session-detail", "session-status"}
            else (client.get(url))
        )
        assert response.status_code == 404

    def test_an_ended_session_takes_no_more_tokens(self, created, owner_client) -> None:
        CaptureSession.objects.filter(pk=created.pk).update(status="stopped")
        response = owner_client.post(reverse("api-client-token", args=[created.pk]))
        assert response.status_code == 409
        assert "stopped" in response.json()["error"]

    def test_the_json_endpoint_is_post_only(self, created, owner_client) -> None:
        assert owner_client.get(reverse("api-client-token", args=[created.pk])).status_code == 405


class TestStatus:
    def test_the_status_fragment_refreshes_when_the_state_is_pushed_and_never_polls(
        self, created, owner_client
    ) -> None:
        url = reverse("session-status", args=[created.pk])
        live = owner_client.get(url)
        body = live.content.decode()
        assert live.status_code == 200 and 'hx-trigger="live-status from:body"' in body
        assert "every " not in body
        CaptureSession.objects.filter(pk=created.pk).update(
            status="failed", error={"message": "Mic lost"}
        )
        assert "Mic lost" in owner_client.get(url).content.decode()

    def test_text_from_videodb_is_escaped(self, created, owner_client) -> None:
        CaptureSession.objects.filter(pk=created.pk).update(
            status="failed", error={"message": "<img src=x onerror=alert(1)>"}
        )
        body = owner_client.get(reverse("session-status", args=[created.pk])).content.decode()
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


class TestSimulatedMeeting:
    def test_playing_a_meeting_makes_the_emulator_act_as_the_desktop_client(
        self, created, owner_client, videodb, settings
    ) -> None:
        settings.SIMULATED_MEETING_SPEED = 50
        response = owner_client.post(
            reverse("session-simulate", args=[created.pk]), {"script": "sales_call"}
        )
        assert response.status_code == 302
        videodb.control.wait_for_status(created.videodb_id, "active")
        assert videodb.control.meeting(created.videodb_id)["script"] == "sales_call"

    def test_an_unknown_script_is_refused_with_a_message(self, created, owner_client) -> None:
        response = owner_client.post(
            reverse("session-simulate", args=[created.pk]), {"script": "../../etc/passwd"},
            follow=True,
        )  # fmt: skip
        assert "Unknown meeting script" in response.content.decode()


class TestAlertRules:
    def test_a_rule_can_be_created_edited_disabled_and_deleted(self, owner_client, owner) -> None:
        owner_client.post(
            reverse("rule-new"),
            {"label": "pricing", "prompt": "Someone names a price", "target": "both",
             "is_enabled": "on"},
        )  # fmt: skip
        rule = AlertRule.objects.get(owner=owner)
        rule.videodb_event_id = "evt-old"
        rule.save()
        owner_client.post(
            reverse("rule-edit", args=[rule.pk]),
            {"label": "pricing", "prompt": "Someone names a price or discount", "target": "audio",
             "is_enabled": "on"},
        )  # fmt: skip
        rule.refresh_from_db()
        assert (rule.target, rule.videodb_event_id) == ("audio", "")  # a new prompt, a new event
        owner_client.post(reverse("rule-toggle", args=[rule.pk]))
        rule.refresh_from_db()
        assert rule.is_enabled is False
        owner_client.post(reverse("rule-delete", args=[rule.pk]))
        assert not AlertRule.objects.exists()

    def test_a_duplicate_label_is_refused(self, owner_client, owner) -> None:
        AlertRule.objects.create(owner=owner, label="pricing", prompt="Price talk")
        response = owner_client.post(
            reverse("rule-new"), {"label": "pricing", "prompt": "Again and again", "target": "both"}
        )
        assert "already have a rule" in response.content.decode()
        assert AlertRule.objects.count() == 1

    def test_toggling_over_htmx_returns_the_row(self, owner_client, owner) -> None:
        rule = AlertRule.objects.create(owner=owner, label="pricing", prompt="Price talk")
        response = owner_client.post(
            reverse("rule-toggle", args=[rule.pk]), headers={"HX-Request": "true"}
        )
        body = response.content.decode()
        assert body.strip().startswith(f'<tr id="rule-{rule.pk}" class="disabled"')
        assert "Enable" in body

    @pytest.mark.parametrize("name", ["rule-edit", "rule-toggle", "rule-delete"])
    def test_someone_elses_rule_is_a_404(self, client, stranger, owner, name: str) -> None:
        rule = AlertRule.objects.create(owner=owner, label="pricing", prompt="Price talk")
        client.force_login(stranger)
        url = reverse(name, args=[rule.pk])
        assert client.post(url, {"label": "x"}).status_code == 404
        assert AlertRule.objects.get().label == "pricing"

    def test_the_list_counts_the_alerts_each_rule_fired(
        self, owner_client, owner, meeting, mic
    ) -> None:
        rule = AlertRule.objects.create(owner=owner, label="pricing", prompt="Price talk")
        for start_ms, triggered in ((1000, True), (2000, True), (3000, False)):
            Alert.objects.create(
                session=meeting, stream=mic, rule=rule, label="pricing", triggered=triggered,
                start_ms=start_ms, end_ms=start_ms + 500,
            )  # fmt: skip
        body = owner_client.get(reverse("rule-list")).content.decode()
        row = body.split(f'<tr id="rule-{rule.pk}"')[1].split("</tr>")[0]
        assert '<td data-label="Fired">2</td>' in row

    def test_editing_only_the_target_or_switch_keeps_the_videodb_event(
        self, owner_client, owner
    ) -> None:
        rule = AlertRule.objects.create(
            owner=owner, label="pricing", prompt="Price talk", videodb_event_id="evt-1"
        )
        owner_client.post(
            reverse("rule-edit", args=[rule.pk]),
            {"label": "pricing", "prompt": "Price talk", "target": "visual"},
        )
        rule.refresh_from_db()
        assert (rule.target, rule.is_enabled, rule.videodb_event_id) == ("visual", False, "evt-1")

    def test_the_list_shows_only_my_rules(self, owner_client, owner, stranger) -> None:
        AlertRule.objects.create(owner=owner, label="mine", prompt="My rule text")
        AlertRule.objects.create(owner=stranger, label="theirs", prompt="Their rule text")
        body = owner_client.get(reverse("rule-list")).content.decode()
        assert "mine" in body and "theirs" not in body


def test_json_error_bodies_are_json(created, owner_client) -> None:
    CaptureSession.objects.filter(pk=created.pk).update(status="exported")
    response = owner_client.post(reverse("api-client-token", args=[created.pk]))
    assert json.loads(response.content)["error"]
