"""An alert that only a callback reported is held, unseen, until VideoDB's own records (or
the socket, see test_webhooks.py) bear it out: anyone holding a callback URL could post it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sessions_app import gateway
from sessions_app.capture import handoff, lifecycle
from sessions_app.live import ingest
from sessions_app.models import Alert, AlertRule, StreamOperation
from tests.conftest import TINY_MEETING, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watched(videodb, owner):
    """A meeting playing in the emulator, with a rule's alert watching an index."""
    rule = AlertRule.objects.create(
        owner=owner, label="pricing", prompt="Someone discusses price", target="both"
    )
    session = handoff.create_session(
        owner, title="Pricing", audio_prompt="Decisions", visual_prompt="Screen", alert_rules=[rule]
    )
    token = handoff.mint_client_token(session).token
    videodb.control.simulate(session.videodb_id, TINY_MEETING, speed=4, client_token=token)
    videodb.control.wait_for_status(session.videodb_id, "active")
    lifecycle.sync_session(session.pk)
    lifecycle.start_ai(session.pk)
    operation = (
        StreamOperation.objects.filter(stream__session=session, kind=StreamOperation.Kind.ALERT)
        .exclude(index_id="")
        .select_related("stream")[0]
    )
    records = wait_until(
        lambda: gateway.index_records(operation.stream.videodb_id, operation.index_id),
        30,
        "the watched index to write a record",
    )
    return operation.stream, records[0]


def callback(stream, start_s: float, end_s: float):
    url = lifecycle.alert_callback_url(stream.session, stream.videodb_id)
    body = {"label": "pricing", "confidence": 0.9, "start_time": start_s, "end_time": end_s}
    return Client().post(url, data=json.dumps(body), content_type="application/json")


def test_a_held_alert_is_shown_once_videodbs_records_show_that_moment(watched) -> None:
    stream, record = watched
    response = callback(stream, record["start"] / 1000, record["end"] / 1000)
    assert response.json() == {"status": "unconfirmed"}
    held = Alert.all_objects.get(stream=stream)
    assert not Alert.objects.exists()

    update = ingest.confirm_from_videodb(held.pk)

    assert update is not None
    shown = Alert.objects.get()
    assert shown.pk == held.pk and shown.seq > 0 and update["seq"] == shown.seq
    assert ingest.confirm_from_videodb(held.pk) is None  # once


def test_a_forged_moment_videodb_never_recorded_stays_hidden(watched) -> None:
    stream, _ = watched
    callback(stream, 1_000_000.0, 1_000_002.0)  # 1970: no index record there
    held = Alert.all_objects.get(stream=stream)
    with pytest.raises(ingest.NotConfirmedYet):
        ingest.confirm_from_videodb(held.pk)
    assert not Alert.objects.exists()
