"""Sign-in throttling (django-axes, counted in the Redis cache): after five wrong passwords
for one username from one IP, sign-in as that user from that IP answers 429 with a page
that says how long to wait — on the site's login and the admin's alike. Other users, the
same user elsewhere, and a cool-off that has run out are not blocked; a successful sign-in
clears the count."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PASSWORD = "pw-for-tests"  # UserFactory's
SITE_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
WRONG = "Please enter a correct username and password"
LOCKED = "Too many failed sign-in attempts; try again in 15 minutes."


@pytest.fixture
def ada(db):
    return UserFactory(username="ada", is_staff=True)


def sign_in(client: Client, username: str, password: str, *, url: str = SITE_LOGIN, ip=None):
    extra = {"REMOTE_ADDR": ip} if ip else {}
    return client.post(url, {"username": username, "password": password}, **extra)


def fail(client: Client, username: str, times: int, **kwargs) -> list[int]:
    return [sign_in(client, username, "wrong", **kwargs).status_code for _ in range(times)]


def signed_in_as(client: Client) -> str | None:
    response = client.get("/api/me/")
    return response.json()["username"] if response.status_code == 200 else None


def test_five_wrong_passwords_lock_out_even_the_right_one(ada):
    client = Client()
    for _ in range(4):
        response = sign_in(client, "ada", "wrong")
        assert response.status_code == 200
        assert WRONG in response.content.decode()

    fifth = sign_in(client, "ada", "wrong")
    assert fifth.status_code == 429
    assert LOCKED in fifth.content.decode()

    sixth = sign_in(client, "ada", PASSWORD)
    assert sixth.status_code == 429
    page = sixth.content.decode()
    assert LOCKED in page
    assert "After 5 wrong passwords in a row" in page
    assert 'href="/accounts/login/"' in page
    assert signed_in_as(client) is None


def test_others_on_the_same_address_and_ada_elsewhere_still_sign_in(ada):
    UserFactory(username="bob")
    fail(Client(), "ada", 5)
    assert sign_in(Client(), "ada", PASSWORD).status_code == 429

    bob = Client()
    assert sign_in(bob, "bob", PASSWORD).status_code == 302
    assert signed_in_as(bob) == "bob"

    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert sign_in(elsewhere, "ada", PASSWORD, ip="203.0.113.9").status_code == 302
    assert signed_in_as(elsewhere) == "ada"


def test_a_successful_sign_in_clears_the_count(ada):
    client = Client()
    assert fail(client, "ada", 4) == [200] * 4
    assert sign_in(client, "ada", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    assert fail(client, "ada", 4) == [200] * 4  # counted from zero again
    assert sign_in(client, "ada", PASSWORD).status_code == 302
    assert signed_in_as(client) == "ada"


def test_the_admin_login_is_throttled_and_shares_the_count(ada):
    client = Client()
    assert fail(client, "ada", 3, url=ADMIN_LOGIN) == [200] * 3
    assert fail(client, "ada", 2) == [200, 429]  # the site's login adds to the same count

    locked = sign_in(client, "ada", PASSWORD, url=ADMIN_LOGIN)
    assert locked.status_code == 429
    assert LOCKED in locked.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_the_lockout_ends_when_the_cool_off_has_passed(ada, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    client = Client()
    assert fail(client, "ada", 5)[-1] == 429
    assert sign_in(client, "ada", PASSWORD).status_code == 429

    time.sleep(1.5)  # the count expires from Redis with the cool-off

    assert fail(client, "ada", 1) == [200]  # a fresh count, not a lockout
    assert sign_in(client, "ada", PASSWORD).status_code == 302
    assert signed_in_as(client) == "ada"


def test_each_attempt_during_the_lockout_starts_the_wait_again(ada, settings):
    """The locked-out page: "Each new attempt while it is paused starts the wait again."
    An attempt 2.5 s into a 4 s cool-off pushes its end past the original 4 s."""
    settings.AXES_COOLOFF_TIME = timedelta(seconds=4)
    client = Client()
    assert fail(client, "ada", 5)[-1] == 429
    time.sleep(2.5)
    assert fail(client, "ada", 1) == [429]  # restarts the wait
    time.sleep(2.5)  # 5 s since the lockout began: the original wait is over
    assert sign_in(client, "ada", PASSWORD).status_code == 429  # and restarts it again
    time.sleep(4.5)  # a whole cool-off with no attempt
    assert sign_in(client, "ada", PASSWORD).status_code == 302
    assert signed_in_as(client) == "ada"
