"""The desktop client's token reaches only its own Copilot user's capture sessions."""

from __future__ import annotations

import pytest
import videodb as videodb_sdk
from videodb.exceptions import InvalidRequestError

from sessions_app.capture import handoff

CHANNELS = [{"channel_id": "mic:default", "type": "audio"}]


def _create(owner, title: str):
    return handoff.create_session(
        owner, title=title, audio_prompt="decisions", visual_prompt="screen"
    )


@pytest.mark.django_db
def test_a_users_token_cannot_read_stop_or_start_another_users_session(
    videodb, owner, stranger
) -> None:
    mine = _create(owner, "Mine")
    theirs = _create(stranger, "Theirs")
    assert mine.end_user_id != theirs.end_user_id
    token = handoff.mint_client_token(mine).token
    desktop = videodb_sdk.connect(session_token=token, base_url=videodb.base_url)

    for call in (
        lambda: desktop.get(f"capture/session/{theirs.videodb_id}"),
        lambda: desktop.post(f"capture/session/{theirs.videodb_id}/stop"),
        lambda: desktop.post(
            "capture/session/start",
            data={"session_id": theirs.videodb_id, "channels": CHANNELS},
        ),
    ):
        with pytest.raises(InvalidRequestError) as info:
            call()
        assert info.value.response.status_code == 404
    assert videodb.control.session(theirs.videodb_id)["status"] == "created"

    # Its own session it reads, without the webhook URL (and its secret).
    seen = desktop.get(f"capture/session/{mine.videodb_id}")
    assert seen["session_id"] == mine.videodb_id
    assert "callback_url" not in seen
    assert mine.webhook_secret not in str(seen)
