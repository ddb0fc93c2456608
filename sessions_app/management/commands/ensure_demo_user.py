from __future__ import annotations

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions_app.capture import alert_rules
from sessions_app.models import AlertRule, User

# Example rules for the demo user (the simulated meetings raise alerts for them).
DEMO_RULES = (
    ("Pricing objection", "pricing_objection", "The customer pushes back on price or budget."),
    ("Security question", "security_question", "Someone asks about security or compliance."),
)


class Command(BaseCommand):
    help = (
        "Create (or keep) a local staff user for trying Copilot out, with two example alert "
        "rules, and print how to log in. "
        "Refuses to run with DEBUG off: production accounts come from createsuperuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")

    def handle(self, *args: object, username: str, **options: object) -> None:
        if not settings.DEBUG:
            raise CommandError("ensure_demo_user only runs with DEBUG=1 (it prints a password)")
        if not username.isidentifier():
            raise CommandError(f"--username must be letters, digits and _; got {username!r}")
        password_file = settings.VAR_DIR / f"{username}-password"
        if password_file.exists():
            password = password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        if not AlertRule.objects.filter(owner=user).exists():
            # A newcomer's first simulated meeting should show what an alert looks like.
            for name, label, prompt in DEMO_RULES:
                alert_rules.save(
                    user, name=name, label=label, prompt=prompt, target="both", is_enabled=True
                )
        self.stdout.write(f"Log in as {username} / {password} (kept in {password_file})")
