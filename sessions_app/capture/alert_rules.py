"""Alert rules: a user's plain-language detections, kept in step with VideoDB events."""

from __future__ import annotations

from django.db import transaction

from sessions_app.models import AlertRule, User


@transaction.atomic
def save(
    owner: User,
    *,
    label: str,
    prompt: str,
    target: str,
    is_enabled: bool,
    name: str = "",
    rule: AlertRule | None = None,
) -> AlertRule:
    """Store ``owner``'s rule with these values: a new one, or ``rule`` changed. A changed
    label or prompt is a different VideoDB event, so the old event id is dropped and the
    next session creates a new one; a new name, target or switch keeps it."""
    rule = rule if rule is not None else AlertRule()
    if rule.pk is not None:
        # Compared with what is stored, not with ``rule``: a bound form has already written
        # the new values onto the instance it was given. The stored event id is the freshest
        # (a session may have created it since ``rule`` was read).
        stored = AlertRule.objects.select_for_update().get(pk=rule.pk)
        same_event = (stored.label, stored.prompt) == (label, prompt)
        rule.videodb_event_id = stored.videodb_event_id if same_event else ""
    rule.owner = owner
    rule.name = name
    rule.label = label
    rule.prompt = prompt
    rule.target = target
    rule.is_enabled = is_enabled
    rule.save()
    return rule


def set_enabled(rule: AlertRule, enabled: bool) -> None:
    rule.is_enabled = enabled
    rule.save(update_fields=["is_enabled", "updated_at"])


def delete(rule: AlertRule) -> None:
    """Delete ``rule``. The alerts it raised stay, with their label, and no longer name it."""
    rule.delete()
