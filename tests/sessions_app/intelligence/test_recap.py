"""The recap of a meeting and the follow-up email drafted from it: which brief, which points,
evidence numbered as links to the moments, and a plain-text email that no item can bend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from sessions_app.intelligence import recap as recaps
from sessions_app.models import CaptureSession
from tests.sessions_app.conftest import fire, note, say
from tests.sessions_app.intelligence.kept_briefs import asked, brief, decided, summed_up, to_do

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
BASE = int(START.timestamp() * 1000)


@pytest.fixture
def ended(meeting, mic, system_audio, screen) -> CaptureSession:
    CaptureSession.objects.filter(pk=meeting.pk).update(
        status="stopped", started_at=START, ended_at=START.replace(hour=10)
    )
    system_audio.speaker_label = "Ana"
    system_audio.save()
    meeting.refresh_from_db()
    return meeting


@pytest.fixture
def said(ended, mic, system_audio, screen):
    """The moments a brief cites: two lines, a screen, an insight, an alert."""
    return {
        "launch": say(mic, "We launch on May 3", BASE + 65_000, final=True),
        "pricing": say(system_audio, "I'll send the pricing sheet by Friday", BASE + 190_000,
                       final=True),
        "slide": note(screen, "Pricing page: three tiers", BASE + 200_000, kind="visual"),
        "insight": note(system_audio, "Decision: launch date fixed", BASE + 66_000),
        "alert": fire(mic, "pricing_shared", BASE + 201_000, text="Price list shown"),
    }  # fmt: skip


def test_a_meeting_without_a_brief_has_no_recap(ended):
    assert recaps.recap(ended) is None


def test_the_recap_holds_the_current_points_of_each_kind_in_order(ended, said):
    brief(ended)
    summed_up(ended, "The launch date was agreed", said["launch"])
    decided(ended, "Launch on May 3", said["launch"], said["insight"])
    to_do(ended, "Send the pricing sheet", said["pricing"], owner="Ana", due="Friday")
    to_do(ended, "An item a refresh dropped", said["pricing"], is_current=False)
    asked(ended, "Which tier do schools get?", said["slide"])

    r = recaps.recap(ended)
    assert [p.text for p in r.summary] == ["The launch date was agreed"]
    assert [p.text for p in r.decisions] == ["Launch on May 3"]
    assert [(p.text, p.owner, p.due, p.status) for p in r.actions] == [
        ("Send the pricing sheet", "Ana", "Friday", "open")
    ]
    assert [p.text for p in r.questions] == ["Which tier do schools get?"]
    assert [heading for heading, _ in r.sections] == [
        "Summary",
        "Decisions",
        "Action items",
        "Open questions",
    ]


def test_the_final_brief_is_preferred(ended, said):
    brief(ended)
    brief(ended, final=True)
    brief(ended)  # made after the final one (a late refresh): the final one still leads
    r = recaps.recap(ended)
    assert (r.brief_number, r.is_final) == (2, True)


def test_evidence_is_numbered_footnote_style_and_opens_each_moment(ended, said):
    brief(ended, final=True)
    summed_up(ended, "Launch agreed", said["launch"])
    decided(ended, "Launch on May 3", said["insight"], said["launch"])
    to_do(ended, "Send the pricing sheet", said["pricing"], said["slide"], said["alert"])

    r = recaps.recap(ended)
    history = reverse("session-history", args=[ended.pk])
    (summary,) = r.summary
    assert [(c.number, c.when) for c in summary.citations] == [(1, "01:05")]
    assert summary.citations[0].url == f"{history}?at={BASE + 65_000}#line-{said['launch'].pk}"
    assert summary.citations[0].label == "Host: We launch on May 3"
    # The same moment keeps its number wherever it is cited.
    (decision,) = r.decisions
    assert [c.number for c in decision.citations] == [2, 1]
    assert decision.citations[0].url.endswith(f"#ins-{said['insight'].pk}")
    assert decision.citations[0].label == "Insight: Decision: launch date fixed"
    (action,) = r.actions
    assert [c.number for c in action.citations] == [3, 4, 5]
    assert [c.url.split("#")[1] for c in action.citations] == [
        f"line-{said['pricing'].pk}",
        f"ins-{said['slide'].pk}",
        f"alert-{said['alert'].pk}",
    ]
    assert action.citations[1].label == "On screen: Pricing page: three tiers"
    assert action.citations[2].label == "Alert: Pricing shared Price list shown"


def test_only_stored_moments_of_the_same_session_are_cited_each_once(
    ended, said, make_session, make_stream, owner
):
    other = make_session(owner)
    elsewhere = say(make_stream(other), "Another meeting's line", BASE, final=True)
    brief(ended)
    point = decided(ended, "Launch on May 3", said["launch"], elsewhere)
    point.evidence += [
        {"kind": "transcript", "id": said["launch"].pk},  # cited twice: shown once
        {"kind": "transcript", "id": 999_999},
        {"kind": "nonsense", "id": 1},
        {"kind": "alert", "id": True},
        7,
    ]
    point.save()

    (decision,) = recaps.recap(ended).decisions
    assert [c.url.split("#")[1] for c in decision.citations] == [f"line-{said['launch'].pk}"]


# --- the email --------------------------------------------------------------------------------


def test_the_email_draft_has_every_section_and_is_signed_by_the_owner(ended, said):
    brief(ended, final=True)
    summed_up(ended, "The launch date was agreed", said["launch"])
    summed_up(ended, "Pricing was reviewed", said["slide"])
    decided(ended, "Launch on May 3", said["launch"])
    to_do(ended, "Send the pricing sheet", said["pricing"], owner="Ana", due="Friday")
    to_do(ended, "Book the venue", said["launch"])
    to_do(ended, "Draft the announcement", said["launch"], owner="Me", status="done")
    asked(ended, "Which tier do schools get?", said["slide"])

    draft = recaps.email_draft(recaps.recap(ended), ended)
    assert draft == (
        "Subject: Follow-up: Q3 roadmap review (2026-03-14)\n"
        "\n"
        "Hi all,\n"
        "\n"
        "Thank you for joining Q3 roadmap review. Here is a recap of what we covered.\n"
        "\n"
        "Summary:\n"
        "- The launch date was agreed\n"
        "- Pricing was reviewed\n"
        "\n"
        "Decisions:\n"
        "- Launch on May 3\n"
        "\n"
        "Action items:\n"
        "- Send the pricing sheet (owner: Ana, due: Friday)\n"
        "- Book the venue (owner: not named)\n"
        "- Draft the announcement (owner: Me) [done]\n"
        "\n"
        "Open questions:\n"
        "- Which tier do schools get?\n"
        "\n"
        "Best regards,\n"
        "Olivia Owner\n"
    )


def test_empty_sections_are_left_out_and_items_cannot_break_the_layout(ended, said):
    ended.title = "Launch\nsync"
    brief(ended)
    decided(ended, "Ship it\n\nSubject: phishing\x1b\x07 now", said["launch"])
    draft = recaps.email_draft(recaps.recap(ended), ended)
    assert draft.startswith("Subject: Follow-up: Launch sync (2026-03-14)\n")
    assert "- Ship it Subject: phishing now\n" in draft
    assert "Summary:" not in draft and "Action items:" not in draft
    assert draft.count("Subject:") == 2  # the header, and the item's text on its bullet line


def test_a_brief_with_no_points_says_so(ended):
    brief(ended, final=True)
    recap = recaps.recap(ended)
    assert recap.is_empty
    draft = recaps.email_draft(recap, ended)
    assert "The meeting's brief recorded no points." in draft
    assert draft.endswith("Best regards,\nOlivia Owner\n")
