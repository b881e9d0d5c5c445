"""Browser fixtures: Debian's Chromium driven by Playwright against pytest-django's
``live_server``. A failing test leaves a screenshot in ``/tmp/shots/failed-<test>.png``."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import factory
import pytest
from django.utils import timezone

from notifications.models import Category, Notification
from tests.factories import MembershipFactory, TeamFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path("/tmp/shots")
PASSWORD = "pw-for-tests"  # UserFactory's
POLL_MS = 300  # the badge polls every 10 s in real use; tests need not wait that long

_dedup = itertools.count()


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    recipient = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    category = Category.ACTIVITY
    title = factory.Sequence(lambda i: f"Dashboard {i} was edited")
    body = ""
    url = "/dashboards/1/"
    actor_name = "Ada Lovelace"
    reason = "You created this dashboard."
    dedup_key = factory.LazyFunction(lambda: f"browser-test-{next(_dedup)}")
    first_seen_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.LazyAttribute(lambda n: n.first_seen_at)


@pytest.fixture
def notify():
    """``notify(user, team, **fields)`` stores one in-app notification for ``user``."""

    def make(user, team, **fields):
        return NotificationFactory(recipient=user, team=team, **fields)

    return make


@pytest.fixture
def web(transactional_db):
    return TeamFactory(name="Web")


@pytest.fixture
def member(web):
    """Ada, a member of the Web team; her password is ``PASSWORD``."""
    return MembershipFactory(user=UserFactory(username="ada"), team=web).user


@pytest.fixture(scope="module")
def _orm_beside_playwright():
    """Playwright's sync API keeps an asyncio loop marked running in this thread while a
    browser is open, and Django refuses ORM calls from a thread with a running loop. The
    test's ORM calls are plain synchronous calls between browser steps, so the guard is
    lifted while this module's browser lives, and put back after it closes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(_orm_beside_playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1100, "height": 900}, locale="en-GB"
    )
    context.add_init_script(f"window.notiflowPollMs = {POLL_MS};")
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"failed-{request.node.name}.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def login(page):
    def log_in(user, password=PASSWORD):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    return log_in


def shot(page, name: str) -> Path:
    """A full-page screenshot to look at: ``/tmp/shots/<name>.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def hours_ago(hours: float):
    return timezone.now() - timedelta(hours=hours)
