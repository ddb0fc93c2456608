"""Alert rules: a user's plain-language detections, kept in step with VideoDB events."""

from __future__ import annotations

from sessions_app.forms import AlertRuleForm
from sessions_app.models import AlertRule, User


def save(form: AlertRuleForm, *, owner: User) -> AlertRule:
    """Save a valid rule form. A changed label or prompt is a different VideoDB event, so
    the old event id is dropped and the next session creates a new one."""
    rule = form.save(commit=False)
    rule.owner = owner
    if rule.pk and {"label", "prompt"} & set(form.changed_data):
        rule.videodb_event_id = ""
    rule.save()
    return rule


def set_enabled(rule: AlertRule, enabled: bool) -> None:
    rule.is_enabled = enabled
    rule.save(update_fields=["is_enabled", "updated_at"])
