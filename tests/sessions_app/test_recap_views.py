"""The history page after the meeting: the recap with its evidence links, the follow-up email
for the owner, and the series a meeting belongs to (set on the New session form)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions_app.models import CaptureSession
from tests.sessions_app.conftest import say
from tests.sessions_app.intelligence.kept_briefs import asked, brief, decided, summed_up, to_do

pytestmark = pytest.mark.django_db

BREAKOUT = "</textarea><script>alert(1)</script><textarea>"


@pytest.fixture
def ended(meeting, mic):
    start = timezone.now() - timedelta(hours=3)
    CaptureSession.objects.filter(pk=meeting.pk).update(
        status="stopped", started_at=start, ended_at=start + timedelta(hours=1), series="Roadmap"
    )
    meeting.refresh_from_db()
    meeting.line = say(mic, "We ship on May 3", int(start.timestamp() * 1000) + 65_000, final=True)
    return meeting


def history(client, session) -> str:
    return client.get(reverse("session-history", args=[session.pk])).content.decode()


def test_the_recap_shows_each_section_with_numbered_links_to_the_moments(ended, owner_client):
    brief(ended, final=True)
    summed_up(ended, "Launch agreed", ended.line)
    decided(ended, "Ship on May 3", ended.line)
    to_do(ended, "Book the venue", ended.line, owner="Ana", due="Friday")
    asked(ended, "Which city?", ended.line)
    page = history(owner_client, ended)
    for heading in ("Summary", "Decisions", "Action items", "Open questions"):
        assert f"<h3>{heading}</h3>" in page
    assert "The final brief" in page
    link = f"?at={ended.line.start_ms}#line-{ended.line.pk}"
    assert page.count(link) == 4 + 1  # four points cite it; the transcript line links itself
    assert ">[1]</a>" in page and ">[2]</a>" not in page  # one moment, one number
    assert "Owner: Ana" in page and "Due: Friday" in page


def test_without_a_brief_the_page_says_so(ended, meeting, owner_client):
    assert "No recap: this meeting has no brief yet." in history(owner_client, ended)
    CaptureSession.objects.filter(pk=meeting.pk).update(status="active")
    assert "The recap appears when the meeting ends." in history(owner_client, meeting)


def test_a_live_meeting_shows_its_brief_so_far(ended, owner_client):
    CaptureSession.objects.filter(pk=ended.pk).update(status="active", ended_at=None)
    brief(ended)
    decided(ended, "Ship on May 3", ended.line)
    page = history(owner_client, ended)
    assert "The brief so far" in page and "the final recap appears when the meeting ends" in page


def test_the_owner_gets_a_follow_up_email_to_copy(ended, owner_client):
    brief(ended, final=True)
    to_do(ended, "Book the venue", ended.line, owner="Ana", due="Friday")
    page = history(owner_client, ended)
    draft = re.search(r'<textarea id="follow-up-email"[^>]*readonly>(.*?)</textarea>', page, re.S)
    assert draft is not None
    text = html.unescape(draft.group(1))
    assert text.startswith("Subject: Follow-up: Q3 roadmap review (")
    assert "- Book the venue (owner: Ana, due: Friday)" in text
    assert text.endswith("Best regards,\nOlivia Owner\n")
    assert 'data-copy="follow-up-email"' in page and 'aria-live="polite"' in page
    assert "copilot/copy" in page


def test_a_viewer_sees_the_recap_but_not_the_owners_email(ended, client, share_link):
    brief(ended, final=True)
    decided(ended, "Ship on May 3", ended.line)
    client.get(reverse("share-page", args=[share_link.token]))
    page = history(client, ended)
    assert "Ship on May 3" in page and "follow-up-email" not in page


def test_model_text_cannot_break_out_of_the_email_or_the_recap(ended, owner_client):
    brief(ended, final=True)
    to_do(ended, BREAKOUT, ended.line, owner=BREAKOUT)
    page = history(owner_client, ended)
    assert "<script>alert(1)" not in page
    assert page.count("</textarea>") == 1  # the email's own
    assert "&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_series_is_shown_on_the_history_page_and_in_the_list(ended, owner_client):
    assert "<dt>Series</dt><dd>Roadmap</dd>" in history(owner_client, ended)
    assert "Series: Roadmap" in owner_client.get(reverse("dashboard")).content.decode()


def test_a_new_session_can_name_its_series_from_the_ones_used_before(
    videodb, owner_client, owner, make_session
):
    make_session(owner, series="Platform sync")
    form = owner_client.get(reverse("session-new")).content.decode()
    assert 'list="series-names"' in form and '<option value="Platform sync">' in form
    owner_client.post(reverse("session-new"), {"title": "Week 12", "series": "  Platform   sync "})
    assert CaptureSession.objects.get(title="Week 12").series == "Platform sync"
    response = owner_client.post(reverse("session-new"), {"title": "x", "series": "s" * 201})
    assert "series" in response.context["form"].errors
