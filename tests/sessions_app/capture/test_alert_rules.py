"""The alert-rules service takes plain values: it creates and changes rules, and drops the
VideoDB event when (and only when) what VideoDB watches for changes."""

from __future__ import annotations

import pytest

from sessions_app.capture import alert_rules
from sessions_app.forms import AlertRuleForm
from sessions_app.models import Alert, AlertRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(owner) -> AlertRule:
    return AlertRule.objects.create(
        owner=owner,
        label="pricing",
        prompt="Someone names a price",
        target=AlertRule.Target.BOTH,
        videodb_event_id="evt-1",
    )


def values(**changes: object) -> dict[str, object]:
    return {
        "label": "pricing",
        "prompt": "Someone names a price",
        "target": AlertRule.Target.BOTH,
        "is_enabled": True,
        **changes,
    }


def test_a_new_rule_is_stored_for_its_owner(owner) -> None:
    created = alert_rules.save(owner, **values(target=AlertRule.Target.AUDIO))
    stored = AlertRule.objects.get(pk=created.pk)
    assert (stored.owner, stored.label, stored.target, stored.is_enabled) == (
        owner, "pricing", "audio", True,
    )  # fmt: skip
    assert stored.videodb_event_id == ""


@pytest.mark.parametrize(
    "changes",
    [{"label": "pricing_named"}, {"prompt": "Someone names a price or a discount"}],
    ids=["label", "prompt"],
)
def test_a_new_label_or_prompt_drops_the_videodb_event(owner, rule, changes) -> None:
    alert_rules.save(owner, rule=rule, **values(**changes))
    rule.refresh_from_db()
    assert rule.videodb_event_id == ""
    assert {name: getattr(rule, name) for name in changes} == changes


@pytest.mark.parametrize(
    "changes",
    [{"target": AlertRule.Target.VISUAL}, {"is_enabled": False}, {}],
    ids=["target", "switch", "nothing"],
)
def test_a_new_target_or_switch_keeps_the_videodb_event(owner, rule, changes) -> None:
    alert_rules.save(owner, rule=rule, **values(**changes))
    rule.refresh_from_db()
    assert rule.videodb_event_id == "evt-1"
    assert {name: getattr(rule, name) for name in changes} == changes


def test_a_change_is_judged_against_what_is_stored_not_the_instance(owner, rule) -> None:
    # A bound form writes the new values onto its instance while validating.
    form = AlertRuleForm(values(prompt="Someone names a discount"), instance=rule, owner=owner)
    assert form.is_valid(), form.errors
    assert rule.prompt == "Someone names a discount"
    alert_rules.save(owner, rule=rule, **form.cleaned_data)
    rule.refresh_from_db()
    assert (rule.prompt, rule.videodb_event_id) == ("Someone names a discount", "")


def test_an_event_a_session_created_meanwhile_is_kept(owner, rule) -> None:
    stale = AlertRule.objects.get(pk=rule.pk)
    AlertRule.objects.filter(pk=rule.pk).update(videodb_event_id="evt-2")
    alert_rules.save(owner, rule=stale, **values(is_enabled=False))
    rule.refresh_from_db()
    assert (rule.is_enabled, rule.videodb_event_id) == (False, "evt-2")


def test_deleting_a_rule_keeps_the_alerts_it_raised(rule, meeting, mic) -> None:
    alert = Alert.objects.create(
        session=meeting, stream=mic, rule=rule, label="pricing", start_ms=1, end_ms=2
    )
    alert_rules.delete(rule)
    assert not AlertRule.objects.exists()
    alert.refresh_from_db()
    assert (alert.rule, alert.label) == (None, "pricing")
