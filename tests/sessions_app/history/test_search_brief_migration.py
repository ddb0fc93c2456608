"""Migration 0005 (a brief's items in search): it indexes the current decisions and action
items already stored, and search keeps working both ways, on SQLite too, where the table is
rebuilt (which drops the full-text triggers that 0005 puts back)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sessions_app.history import search, search_text
from sessions_app.models import BriefItem, CaptureSession, SearchEntry, TranscriptSegment

BEFORE = [("sessions_app", "0004_intelligence")]


def migrate(targets=None):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


def found(text: str, session_id: int, entries) -> list[str]:
    hits = entries.filter(session_id=session_id).filter(
        search.matching(search_text.parse(text), [session_id])
    )
    return sorted(hits.values_list("text", flat=True))


@pytest.mark.django_db(transaction=True)
def test_migrating_indexes_stored_items_and_search_keeps_working_both_ways():
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    user = old.get_model("sessions_app", "User").objects.create(username="early")
    session = old.get_model("sessions_app", "CaptureSession").objects.create(
        owner=user, title="Before briefs were searchable", webhook_secret="s" * 20
    )
    stream = old.get_model("sessions_app", "RTStream").objects.create(
        session=session, videodb_id="rts-early", name="mic:default", kind="mic"
    )
    line = old.get_model("sessions_app", "TranscriptSegment").objects.create(
        session=session, stream=stream, text="Invoices go out Monday", is_final=True,
        start_ms=1_000, end_ms=2_000,
    )  # fmt: skip
    old_entries = old.get_model("sessions_app", "SearchEntry").objects
    old_entries.create(
        session=session, stream=stream, kind="speech", segment=line, channel="mic",
        start_ms=1_000, end_ms=2_000, day="2026-01-01", text=line.text,
        terms=search_text.terms(line.text),
    )  # fmt: skip
    items = old.get_model("sessions_app", "BriefItem").objects
    evidence = [{"kind": "transcript", "id": line.pk}]
    items.create(session=session, kind="action", key="a", text="Send the invoices",
                 owner="Ana", evidence=evidence, start_ms=1_000)  # fmt: skip
    items.create(session=session, kind="summary", key="s", text="Invoices discussed",
                 evidence=evidence, start_ms=1_000)  # fmt: skip
    items.create(session=session, kind="decision", key="d", text="Invoices weekly",
                 evidence=evidence, start_ms=1_000, is_current=False)  # fmt: skip
    # Before 0005, on a database that has been back and forth: its triggers still index.
    assert found("invoices", session.pk, old_entries) == ["Invoices go out Monday"]

    migrate()

    assert found("invoices", session.pk, SearchEntry.objects) == [
        "Invoices go out Monday",
        "Send the invoices · owner Ana",
    ]
    # After the rebuild, the triggers index new rows, updates and deletions again.
    segment = TranscriptSegment.objects.get(pk=line.pk)
    current = CaptureSession.objects.get(pk=session.pk)
    decision = BriefItem.objects.create(
        session=current, kind="decision", key="d2", text="Invoices go by post",
        evidence=evidence, start_ms=segment.start_ms,
    )  # fmt: skip
    assert "Invoices go by post" in found("post", session.pk, SearchEntry.objects)
    decision.text = "Invoices go by e-mail"
    decision.save()
    assert found("post", session.pk, SearchEntry.objects) == []
    decision.delete()
    assert found("mail", session.pk, SearchEntry.objects) == []

    # And backwards: 0004's search still finds, and forgets, what it should.
    old = migrate(BEFORE).loader.project_state(BEFORE).apps
    old_entries = old.get_model("sessions_app", "SearchEntry").objects
    assert found("invoices", session.pk, old_entries) == ["Invoices go out Monday"]
    old_entries.filter(segment_id=line.pk).delete()
    assert found("invoices", session.pk, old_entries) == []
    migrate()
