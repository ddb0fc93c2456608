"""Search over what was stored before search existed: the migration indexes it, and
``rebuild_search`` re-creates entries for rows written around the models."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sessions_app.history import search, search_text
from sessions_app.models import SearchEntry
from tests.sessions_app.conftest import fire, note, say


@pytest.mark.django_db(transaction=True)
def test_migrating_indexes_what_was_already_stored():
    executor = MigrationExecutor(connection)
    executor.migrate([("sessions_app", "0001_initial")])
    old = executor.loader.project_state([("sessions_app", "0001_initial")]).apps
    user = old.get_model("sessions_app", "User").objects.create(username="early")
    session = old.get_model("sessions_app", "CaptureSession").objects.create(
        owner=user, title="Before search", webhook_secret="s" * 20
    )
    stream = old.get_model("sessions_app", "RTStream").objects.create(
        session=session, videodb_id="rts-early", name="mic:default", kind="mic"
    )
    segments = old.get_model("sessions_app", "TranscriptSegment").objects
    segments.create(
        session=session,
        stream=stream,
        text="Budgets were approved",
        is_final=True,
        start_ms=1,
        end_ms=2,
    )
    segments.create(
        session=session, stream=stream, text="interim budg", is_final=False, start_ms=5, end_ms=6
    )
    old.get_model("sessions_app", "Alert").objects.create(
        session=session, stream=stream, label="budget_risk", start_ms=3, end_ms=4
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    hits = search.matches(search_text.parse("budget"), [session.pk])
    assert sorted(hits.values_list("kind", "text")) == [
        ("alert", "budget_risk"),
        ("speech", "Budgets were approved"),
    ]


@pytest.mark.django_db
def test_rebuild_search_recreates_entries_written_around_the_models(meeting, mic, screen):
    say(mic, "the launch date moves to May", 1_000, final=True)
    note(screen, "Launch checklist slide", 2_000, kind="visual")
    fire(mic, "launch_risk", 3_000)
    SearchEntry.objects.all().delete()  # as after a raw restore
    assert not search.matches(search_text.parse("launch"), [meeting.pk]).exists()
    call_command("rebuild_search", str(meeting.pk), stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert search.matches(search_text.parse("launch"), [meeting.pk]).count() == 3


@pytest.mark.django_db
def test_rebuild_search_names_a_session_that_does_not_exist():
    with pytest.raises(CommandError, match="no session with id 999"):
        call_command("rebuild_search", "999")
