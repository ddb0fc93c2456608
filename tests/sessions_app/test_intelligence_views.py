"""The pages' side of meeting intelligence: who may ask a session a question, the refusals
(each with its status and a clear message, never a 500), the answer shown escaped with
citations, the questions card, and the catch-up fragment."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from sessions_app.models import BriefItem, Question, ShareLink
from sessions_app.viewers import sharing
from tests.sessions_app.conftest import fire, say, take_seq

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def ask_url(session) -> str:
    return reverse("session-ask", args=[session.pk])


def post(client, session, question: str, **extra):
    return client.post(ask_url(session), {"question": question}, **HTMX, **extra)


@pytest.fixture
def said(meeting, mic, system_audio) -> dict:
    return {
        "objection": say(
            system_audio, "The enterprise tier costs too much for us.", 5000, final=True
        ),
        "decision": say(mic, "We decided to offer a ten percent discount.", 9000, final=True),
    }


@pytest.fixture
def asking_link(meeting, owner) -> ShareLink:
    return sharing.create_link(meeting, owner, can_ask=True)


def open_link(client, link: ShareLink) -> None:
    """Open the share page, as its holder does before anything else."""
    assert client.get(reverse("share-page", args=[link.token])).status_code == 200


class TestWhoMayAsk:
    def test_the_owner_asks_and_gets_a_cited_answer_in_place(
        self, videodb, owner_client, meeting, said
    ) -> None:
        response = post(owner_client, meeting, "What discount did we decide on?")

        assert response.status_code == 200
        body = response.content.decode()
        question = Question.objects.get()
        assert question.outcome == Question.Outcome.ANSWERED
        # The form comes back empty, and the list (swapped by its id) holds the answer.
        assert '<form id="ask-form"' in body
        assert '<ol id="questions"' in body and 'hx-swap-oob="true"' in body
        assert f'id="q-{question.pk}"' in body and "ten percent discount" in body
        decision = said["decision"]
        assert f'data-moment="seg-{decision.pk}"' in body
        history = reverse("session-history", args=[meeting.pk])
        assert f'href="{history}?at={decision.start_ms}#line-{decision.pk}"' in body

    def test_a_link_without_questions_allowed_may_view_but_not_ask(
        self, client, meeting, share_link
    ) -> None:
        open_link(client, share_link)

        response = post(client, meeting, "What was decided?")

        assert response.status_code == 403
        assert "has not allowed questions on your link" in response.content.decode()
        assert not Question.objects.exists()
        plain = client.post(ask_url(meeting), {"question": "What was decided?"})
        assert plain.status_code == 403 and "not allowed questions" in plain.content.decode()

    def test_a_guest_whose_link_allows_it_asks_in_the_links_name(
        self, videodb, client, meeting, said, asking_link
    ) -> None:
        open_link(client, asking_link)

        assert post(client, meeting, "What discount did we decide on?").status_code == 200

        question = Question.objects.get()
        assert (question.share_link, question.asked_by) == (asking_link, None)
        assert question.outcome == Question.Outcome.ANSWERED

    def test_a_signed_in_user_who_opened_such_a_link_asks_as_themselves(
        self, videodb, client, meeting, said, asking_link, make_user
    ) -> None:
        vera = make_user("vera")
        client.force_login(vera)
        open_link(client, asking_link)

        assert post(client, meeting, "What discount did we decide on?").status_code == 200

        question = Question.objects.get()
        assert (question.asked_by, question.share_link) == (vera, asking_link)

    def test_a_revoked_link_no_longer_lets_anyone_ask_or_view(
        self, client, meeting, asking_link
    ) -> None:
        open_link(client, asking_link)
        sharing.revoke(asking_link)
        assert post(client, meeting, "Anything?").status_code == 404

    def test_strangers_and_visitors_without_a_link_get_404(self, client, meeting, stranger) -> None:
        assert post(client, meeting, "What was decided?").status_code == 404
        client.force_login(stranger)
        assert post(client, meeting, "What was decided?").status_code == 404
        assert client.get(ask_url(meeting)).status_code == 404
        assert not Question.objects.exists()


class TestRefusals:
    def test_an_empty_question_is_400_with_the_form_and_its_message(
        self, owner_client, meeting
    ) -> None:
        response = post(owner_client, meeting, "   ")
        assert response.status_code == 400
        body = response.content.decode()
        assert '<form id="ask-form"' in body and "Type a question." in body
        assert not Question.objects.exists()

    def test_a_question_over_500_characters_is_400_naming_the_limit_and_kept_in_the_form(
        self, owner_client, meeting
    ) -> None:
        text = "why " * 125 + "x"  # 501 characters
        response = post(owner_client, meeting, text)
        assert response.status_code == 400
        body = response.content.decode()
        assert "at most 500 characters; this one has 501" in body
        assert text.strip() in body  # what was typed is not lost
        assert not Question.objects.exists()

    def test_too_many_in_a_minute_is_429(self, settings, owner, owner_client, meeting) -> None:
        settings.ASK_PER_MINUTE = 3
        for n in range(3):
            Question.objects.create(session=meeting, asked_by=owner, question=f"q{n}")

        response = post(owner_client, meeting, "One more?")

        assert response.status_code == 429
        assert "You asked 3 questions in the last minute; wait a moment." in (
            response.content.decode()
        )
        assert Question.objects.count() == 3

    def test_a_plain_form_post_is_sent_back_with_the_message(self, owner_client, meeting) -> None:
        back = reverse("session-detail", args=[meeting.pk])
        response = owner_client.post(ask_url(meeting), {"question": "", "next": back})
        assert response.status_code == 302 and response["Location"] == back
        page = owner_client.get(back).content.decode()
        assert "Type a question." in page

    def test_a_next_elsewhere_is_ignored(self, owner_client, meeting) -> None:
        response = owner_client.post(
            ask_url(meeting), {"question": "", "next": "https://evil.example/"}
        )
        assert response["Location"] == reverse("session-history", args=[meeting.pk])

    def test_other_methods_are_405(self, owner_client, meeting) -> None:
        assert owner_client.put(ask_url(meeting)).status_code == 405


def test_what_the_model_and_the_meeting_said_is_escaped(
    videodb, owner_client, meeting, mic
) -> None:
    say(mic, "<script>alert(1)</script> the rollout date is June 4.", 2000, final=True)

    response = post(owner_client, meeting, "<b>When</b> is the rollout date?")

    body = response.content.decode()
    question = Question.objects.get()
    assert question.outcome == Question.Outcome.ANSWERED and "<script>" in question.answer
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>When</b>" not in body and "&lt;b&gt;When&lt;/b&gt;" in body


def test_videodb_failing_shows_the_reason_and_keeps_the_question(
    videodb, owner_client, meeting, said
) -> None:
    videodb.control.inject_generation_fault("error", status=500)

    response = post(owner_client, meeting, "What discount did we decide on?")

    assert response.status_code == 200
    assert "Could not answer right now: " in response.content.decode()
    assert Question.objects.get().outcome == Question.Outcome.FAILED


class TestTheCard:
    def test_the_live_page_has_the_form_and_the_questions_newest_first(
        self, owner, owner_client, meeting
    ) -> None:
        first = Question.objects.create(
            session=meeting, asked_by=owner, question="First?", seq=take_seq(meeting.pk)
        )
        second = Question.objects.create(
            session=meeting, asked_by=owner, question="Second?", seq=take_seq(meeting.pk)
        )
        page = owner_client.get(reverse("session-detail", args=[meeting.pk])).content.decode()
        assert '<form id="ask-form"' in page and "Being answered" in page
        assert page.index(f'id="q-{second.pk}"') < page.index(f'id="q-{first.pk}"')

    def test_the_share_page_offers_the_form_only_when_the_link_allows_asking(
        self, client, share_link, asking_link
    ) -> None:
        page = client.get(reverse("share-page", args=[share_link.token])).content.decode()
        assert 'id="questions"' in page and '<form id="ask-form"' not in page
        page = client.get(reverse("share-page", args=[asking_link.token])).content.decode()
        assert '<form id="ask-form"' in page

    def test_the_history_page_loads_the_card_for_whoever_may_view(
        self, owner_client, meeting, share_link
    ) -> None:
        history = owner_client.get(reverse("session-history", args=[meeting.pk]))
        assert f'hx-get="{ask_url(meeting)}"' in history.content.decode()
        assert '<form id="ask-form"' in owner_client.get(ask_url(meeting)).content.decode()
        guest = Client()
        open_link(guest, share_link)
        card = guest.get(ask_url(meeting))
        assert card.status_code == 200
        assert 'id="questions"' in card.content.decode()
        assert '<form id="ask-form"' not in card.content.decode()

    def test_the_owner_makes_a_link_that_may_ask(self, owner_client, meeting) -> None:
        response = owner_client.post(
            reverse("share-link-create", args=[meeting.pk]),
            {"expires": "never", "can_ask": "on"},
            **HTMX,
        )
        link = ShareLink.objects.get()
        assert link.can_ask
        assert "May ask questions" in response.content.decode()
        owner_client.post(reverse("share-link-create", args=[meeting.pk]), {"expires": "1h"})
        assert not ShareLink.objects.latest("pk").can_ask


class TestCatchUp:
    @pytest.fixture
    def happened(self, meeting, mic, said) -> dict:
        def brief_item(kind: str, text: str, evidence: list) -> BriefItem:
            return BriefItem.objects.create(
                session=meeting, kind=kind, key=text[:20], text=text, evidence=evidence,
                seq=take_seq(meeting.pk),
            )  # fmt: skip

        decision = said["decision"]
        cited = [{"kind": "transcript", "id": decision.pk}]
        early = brief_item("decision", "Offer a ten percent discount", cited)
        alert = fire(mic, "pricing_discussed", decision.start_ms, text="A price was named")
        late = brief_item("action", "Send the quote", cited)
        BriefItem.objects.filter(pk=late.pk).update(owner="Dana", due="Friday")
        gone = brief_item("question", "Which tier?", cited)
        BriefItem.objects.filter(pk=gone.pk).update(is_current=False)
        return {"early": early, "alert": alert, "late": late, "gone": gone}

    def url(self, meeting, **params) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{reverse('session-catch-up', args=[meeting.pk])}?{query}"

    def test_it_shows_only_what_changed_after_the_number_given(
        self, owner_client, meeting, happened
    ) -> None:
        body = owner_client.get(self.url(meeting, since=happened["alert"].seq)).content.decode()

        assert "Since you were last here" in body
        assert "Send the quote" in body and "Dana" in body and "due Friday" in body
        assert "Offer a ten percent discount" not in body and "Pricing discussed" not in body
        assert "Which tier?" not in body  # no longer in the brief
        last_seq = meeting.__class__.objects.get(pk=meeting.pk).last_seq
        assert f'data-through="{last_seq}"' in body

    def test_since_you_joined_shows_everything_current_with_its_evidence(
        self, owner_client, meeting, happened, said
    ) -> None:
        body = owner_client.get(self.url(meeting, since=0, mode="joined")).content.decode()

        assert "Since you joined" in body
        assert "Offer a ten percent discount" in body and "Send the quote" in body
        assert "Pricing discussed" in body and "A price was named" in body
        decision, alert = said["decision"], happened["alert"]
        assert f'data-moment="seg-{decision.pk}"' in body
        assert f'data-moment="alert-{alert.pk}"' in body
        assert body.index("Decisions") < body.index("Action items") < body.index("Alerts")

    def test_nothing_new_is_an_empty_answer(self, owner_client, meeting, happened) -> None:
        last_seq = meeting.__class__.objects.get(pk=meeting.pk).last_seq
        response = owner_client.get(self.url(meeting, since=last_seq))
        assert response.status_code == 200 and response.content.decode().strip() == ""

    def test_a_share_link_viewer_may_catch_up_and_a_stranger_may_not(
        self, client, meeting, share_link, happened, stranger
    ) -> None:
        open_link(client, share_link)
        assert "Send the quote" in client.get(self.url(meeting, since=0)).content.decode()
        client.logout()
        assert client.get(self.url(meeting, since=0)).status_code == 404
        client.force_login(stranger)
        assert client.get(self.url(meeting, since=0)).status_code == 404

    @pytest.mark.parametrize("since", ["", "-1", "abc", "1.5", "9" * 19, "٣"])
    def test_a_malformed_number_is_400(self, owner_client, meeting, since) -> None:
        response = owner_client.get(self.url(meeting, since=since))
        assert response.status_code == 400 and "sequence number" in response.content.decode()
