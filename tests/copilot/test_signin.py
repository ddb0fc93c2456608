"""Sign-in slows guessing down: after a run of failures for one username, or from one
address, both sign-in pages refuse everyone there, the right password included, with a
message that says how long, until the window passes."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")


def attempt(client: Client, url: str, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_300_wrong_passwords_then_the_right_one_is_refused(client, owner) -> None:
    for _ in range(300):
        attempt(client, LOGIN, "olivia", "wrong password")

    refused = attempt(client, LOGIN, "olivia", PASSWORD)
    assert refused.status_code == 200
    assert "Too many failed attempts; try again in 15 minutes." in refused.content.decode()
    assert not signed_in(client)


def test_the_right_password_works_again_once_the_window_has_passed(client, owner, settings) -> None:
    # A short window, and just enough failures to reach the limit, so that all of them
    # fall in one window however slow the machine is.
    settings.LOGIN_LOCKOUT_SECONDS = 2
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        attempt(client, LOGIN, "olivia", "wrong password")
    refused = attempt(client, LOGIN, "olivia", PASSWORD)
    assert "Too many failed attempts; try again in" in refused.content.decode()
    assert not signed_in(client)

    time.sleep(2.1)
    assert attempt(client, LOGIN, "olivia", PASSWORD).status_code == 302
    assert signed_in(client)


def test_the_username_is_locked_from_every_address(client, owner, settings) -> None:
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        attempt(client, LOGIN, "Olivia", "wrong password", address=f"10.0.1.{n}")
    response = attempt(client, LOGIN, "olivia", PASSWORD, address="10.0.2.1")
    assert "Too many failed attempts; try again in 15 minutes." in response.content.decode()
    assert not signed_in(client)


def test_one_address_guessing_many_usernames_is_locked_out_and_no_one_else(
    client, owner, settings
) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5
    for n in range(5):
        attempt(client, LOGIN, f"user{n}", "wrong password", address="10.0.0.9")
    response = attempt(client, LOGIN, "olivia", PASSWORD, address="10.0.0.9")
    assert "Too many failed attempts" in response.content.decode()
    assert not signed_in(client)

    assert attempt(Client(), LOGIN, "olivia", PASSWORD, address="10.0.0.10").status_code == 302


def test_a_few_mistakes_then_the_right_password_signs_in_and_start_the_count_again(
    client, owner, settings
) -> None:
    for _ in range(2):
        for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
            attempt(client, LOGIN, "olivia", "wrong password")
        assert attempt(client, LOGIN, "olivia", PASSWORD).status_code == 302
        client.logout()


def test_the_admin_login_is_throttled_too(client, staff, settings) -> None:
    for _ in range(300):
        attempt(client, ADMIN_LOGIN, "ada", "wrong password")
    response = attempt(client, ADMIN_LOGIN, "ada", PASSWORD)
    assert response.status_code == 200
    assert "Too many failed attempts; try again in 15 minutes." in response.content.decode()
    assert not signed_in(client)
