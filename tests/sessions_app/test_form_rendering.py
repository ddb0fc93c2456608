"""Forms as people meet them: every form renders through the project's form templates (label
above its control, errors and help under it, each error once), the navigation marks where you
are, and flash messages say what happened, announced according to their level."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from sessions_app.models import AlertRule, CaptureSession, User

pytestmark = pytest.mark.django_db


class Tags(HTMLParser):
    """The page's start tags in document order, with their attributes and the text that
    follows each up to the next tag, blanks collapsed: enough to ask "does the label come
    before its input?"."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[dict] = []
        self.feed(html)
        for tag in self.tags:
            tag["text"] = " ".join(tag["text"].split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append({"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""})

    def handle_data(self, data: str) -> None:
        if self.tags:
            self.tags[-1]["text"] += data

    def index(self, tag: str, **attrs: str) -> int:
        """Where the first ``tag`` with these attributes is; fails the test if there is none."""
        for i, found in enumerate(self.tags):
            if found["tag"] == tag and all(found.get(k) == v for k, v in attrs.items()):
                return i
        raise AssertionError(f"no <{tag} {attrs}> on the page")

    def find(self, tag: str, **attrs: str) -> dict:
        return self.tags[self.index(tag, **attrs)]

    def parent_class(self, i: int) -> str:
        """The class of the nearest earlier div or fieldset (the field's wrapper)."""
        for found in reversed(self.tags[:i]):
            if found["tag"] in {"div", "fieldset"}:
                return found.get("class", "")
        return ""


def assert_label_then_control_then_notes(page: Tags, name: str, control: str = "input") -> None:
    label = page.index("label", **{"for": f"id_{name}"})
    field = page.index(control, id=f"id_{name}")
    assert label < field, f"the label of {name} comes after its control"
    # Label and control share one wrapper: the label sits above its own control, not beside
    # the previous one.
    assert "field" in page.parent_class(label).split()
    between = [t["tag"] for t in page.tags[label + 1 : field]]
    assert set(between) <= {"span"}, f"{between} sit between the label of {name} and its control"
    if any(t.get("id") == f"id_{name}_helptext" for t in page.tags):
        assert page.index("div", id=f"id_{name}_helptext") > field, f"{name}'s help is above it"


# --- new session --------------------------------------------------------------------------


def test_new_session_puts_each_label_directly_above_its_own_field(owner_client: Client) -> None:
    page = Tags(owner_client.get(reverse("session-new")).text)
    assert_label_then_control_then_notes(page, "title")
    assert_label_then_control_then_notes(page, "series")
    assert_label_then_control_then_notes(page, "audio_prompt", "textarea")
    assert_label_then_control_then_notes(page, "visual_prompt", "textarea")


def test_help_text_sits_under_its_field_and_describes_it(owner_client: Client) -> None:
    page = Tags(owner_client.get(reverse("session-new")).text)
    title = page.find("input", id="id_title")
    assert title["aria-describedby"] == "id_title_helptext"
    assert page.find("div", id="id_title_helptext")["text"] == "What is this meeting?"


def test_optional_fields_say_so_and_required_ones_do_not(owner_client: Client) -> None:
    page = Tags(owner_client.get(reverse("session-new")).text)
    series = page.index("label", **{"for": "id_series"})
    title = page.index("label", **{"for": "id_title"})
    assert page.tags[series + 1] == {"tag": "span", "class": "optional", "text": "optional"}
    assert page.tags[title + 1]["tag"] == "input"


def test_the_alert_rules_are_a_fieldset_with_a_legend_of_the_form_s_own_style(
    owner_client: Client, owner: User
) -> None:
    AlertRule.objects.create(owner=owner, label="pricing", prompt="Someone names a price")
    page = Tags(owner_client.get(reverse("session-new")).text)
    fieldset = page.index("fieldset")
    assert "field" in page.tags[fieldset]["class"].split()  # styled: no browser default border
    assert page.tags[fieldset + 1]["tag"] == "legend"
    assert page.tags[fieldset + 1]["text"].strip() == "Alert rules"


def test_a_field_error_shows_once_under_its_field_and_marks_it_invalid(
    owner_client: Client,
) -> None:
    html = owner_client.post(reverse("session-new"), {"title": ""}).text
    page = Tags(html)
    title = page.find("input", id="id_title")
    assert title["aria-invalid"] == "true"
    assert title["aria-describedby"] == "id_title_helptext id_title_error"
    error = page.index("ul", id="id_title_error")
    assert page.index("input", id="id_title") < error < page.index("label", **{"for": "id_series"})
    assert html.count("This field is required.") == 1


def test_videodb_refusing_shows_one_announced_error_at_the_top_of_the_form(
    owner_client: Client, videodb
) -> None:
    videodb.control.inject_faults(fail_count=20, status=503)
    html = owner_client.post(reverse("session-new"), {"title": "Launch sync"}).text
    assert html.count("Nothing was created") == 1
    page = Tags(html)
    errors = page.index("div", **{"class": "form-errors", "role": "alert"})
    assert errors < page.index("input", id="id_title")


# --- log in, password, alert rules -----------------------------------------------------------


def test_a_wrong_password_is_said_once_in_an_alert_above_the_fields(
    client: Client, owner: User
) -> None:
    html = client.post(reverse("login"), {"username": "olivia", "password": "nope"}).text
    assert html.count("Please enter a correct username and password") == 1
    page = Tags(html)
    errors = page.index("div", **{"class": "form-errors", "role": "alert"})
    assert errors < page.index("label", **{"for": "id_username"})
    assert_label_then_control_then_notes(page, "username")
    assert_label_then_control_then_notes(page, "password")


def test_password_change_errors_sit_under_their_fields_once(owner_client: Client) -> None:
    html = owner_client.post(
        reverse("password_change"),
        {"old_password": "not it", "new_password1": "a-new-passphrase", "new_password2": "other"},
    ).text
    page = Tags(html)
    for name in ("old_password", "new_password1", "new_password2"):
        assert_label_then_control_then_notes(page, name)
    assert html.count("Your old password was entered incorrectly") == 1
    assert page.index("input", id="id_old_password") < page.index("ul", id="id_old_password_error")
    assert page.index("ul", id="id_new_password2_error") > page.index(
        "input", id="id_new_password2"
    )


def test_the_rule_form_lays_out_its_fields_and_puts_the_checkbox_before_its_label(
    owner_client: Client, owner: User
) -> None:
    AlertRule.objects.create(owner=owner, label="pricing", prompt="Someone names a price")
    html = owner_client.post(
        reverse("rule-new"), {"label": "pricing", "prompt": "Price talk", "target": "both"}
    ).text
    page = Tags(html)
    assert_label_then_control_then_notes(page, "label")
    assert_label_then_control_then_notes(page, "prompt", "textarea")
    assert_label_then_control_then_notes(page, "target", "select")
    assert page.index("input", id="id_is_enabled") < page.index("label", **{"for": "id_is_enabled"})
    assert html.count("You already have a rule with this label.") == 1
    assert page.index("ul", id="id_label_error") > page.index("input", id="id_label")


def test_no_form_label_ends_in_a_colon(owner_client: Client, owner: User) -> None:
    AlertRule.objects.create(owner=owner, label="pricing", prompt="Someone names a price")
    for url in (reverse("session-new"), reverse("rule-new"), reverse("password_change")):
        page = Tags(owner_client.get(url).text)
        labels = [t["text"].strip() for t in page.tags if t["tag"] in {"label", "legend"}]
        assert labels and not [text for text in labels if text.endswith(":")], (url, labels)


# --- navigation --------------------------------------------------------------------------


def current(html: str) -> dict[str, str]:
    """The navigation links marked current: {link text: aria-current}."""
    page = Tags(html)
    return {t["text"].strip(): t["aria-current"] for t in page.tags if t.get("aria-current")}


def test_the_navigation_marks_the_page_you_are_on(owner_client: Client) -> None:
    assert current(owner_client.get(reverse("dashboard")).text) == {"Sessions": "page"}
    assert current(owner_client.get(reverse("rule-list")).text) == {"Alert rules": "page"}
    assert current(owner_client.get(reverse("password_change")).text) == {"Password": "page"}


def test_the_navigation_marks_the_section_of_a_page_it_does_not_list(
    owner_client: Client,
) -> None:
    assert current(owner_client.get(reverse("session-new")).text) == {"Sessions": "true"}
    assert current(owner_client.get(reverse("rule-new")).text) == {"Alert rules": "true"}
    assert current(owner_client.get(reverse("password_change_done")).text) == {"Password": "true"}


def test_only_staff_see_the_admin_link(owner_client: Client, staff: User) -> None:
    assert 'href="/admin/"' not in owner_client.get(reverse("dashboard")).text
    owner_client.force_login(staff)
    assert 'href="/admin/"' in owner_client.get(reverse("dashboard")).text


def test_log_out_is_a_button_that_names_who_is_logged_in(owner_client: Client) -> None:
    page = Tags(owner_client.get(reverse("dashboard")).text)
    button = page.find("button", type="submit", **{"class": "button-quiet logout"})
    assert button["text"].strip() == "Log out"
    assert page.tags[page.tags.index(button) + 1]["text"] == "Olivia Owner"


# --- flash messages ------------------------------------------------------------------------


def test_a_success_message_is_a_polite_status(owner_client: Client) -> None:
    html = owner_client.post(
        reverse("rule-new"),
        {"label": "pricing", "prompt": "Someone names a price", "target": "both"},
        follow=True,
    ).text
    message = Tags(html).find("p", role="status")
    assert message["class"] == "message message-success"
    assert message["text"].startswith("Saved the rule")


def test_an_error_message_is_an_alert(owner_client: Client, owner: User, settings) -> None:
    session = CaptureSession.objects.create(owner=owner, title="Launch", videodb_id="cap-1")
    settings.VIDEODB_USES_EMULATOR = False
    html = owner_client.post(reverse("session-simulate", args=[session.pk]), follow=True).text
    message = Tags(html).find("p", role="alert")
    assert message["class"] == "message message-error"
    assert message["text"] == "Simulated meetings only exist on the local emulator."


def test_playing_a_meeting_names_it_by_its_title_not_its_file(
    owner_client: Client, videodb, settings
) -> None:
    settings.SIMULATED_MEETING_SPEED = 50
    owner_client.post(reverse("session-new"), {"title": "Launch sync"}, follow=True)
    session = CaptureSession.objects.get()
    html = owner_client.post(
        reverse("session-simulate", args=[session.pk]), {"script": "sales_call"}, follow=True
    ).text
    message = Tags(html).find("p", role="status")
    assert "sales_call" not in message["text"]
    assert message["text"].startswith("Playing the simulated meeting “")
    assert "sales call" in message["text"].lower()
