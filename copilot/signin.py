"""Sign-in forms that slow down guessing, for the site's login page and the admin's.

After ``LOGIN_FAILURE_LIMIT`` failed attempts for one username, or ``LOGIN_ADDRESS_FAILURE_LIMIT``
from one address, within ``LOGIN_LOCKOUT_SECONDS``, sign-in is refused for that username
or address, right or wrong password alike, until the window passes; the message says how
long. A successful sign-in clears its username's count.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from copilot import throttle


def _names(form: AuthenticationForm) -> list[tuple[str, int]]:
    username = (form.data.get("username") or "").strip().casefold()
    address = form.request.META.get("REMOTE_ADDR", "") if form.request else ""
    return [
        (f"login:user:{username}", settings.LOGIN_FAILURE_LIMIT),
        (f"login:addr:{address}", settings.LOGIN_ADDRESS_FAILURE_LIMIT),
    ]


class ThrottledSignIn:
    """Mixed into Django's authentication forms, before them."""

    def clean(self) -> dict:
        window = settings.LOGIN_LOCKOUT_SECONDS
        names = _names(self)
        wait = max(throttle.held_for(name, limit, window) for name, limit in names)
        if wait:
            raise forms.ValidationError(
                f"Too many failed attempts; try again in {throttle.in_words(wait)}.",
                code="throttled",
            )
        try:
            data = super().clean()
        except forms.ValidationError as error:
            if getattr(error, "code", None) == "invalid_login":
                for name, limit in names:
                    throttle.use(name, limit, window)
            raise
        throttle.forget(names[0][0])
        return data


class SignInForm(ThrottledSignIn, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    pass
