"""The pages in a real browser (Debian's Chromium via Playwright) against the live server:
the bell badge, the notification center's actions, the trigger form with the API's errors
beside their fields, and the preferences grid."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notifications.models import Delivery, Notification, Preference, Trigger
from notifications.unsubscribe import unsubscribe_token
from tests.factories import (
    InsightFactory,
    MembershipFactory,
    TeamFactory,
    TriggerFactory,
    UserFactory,
)
from tests.frontend.conftest import hours_ago, shot
from workspace.models import Cohort, Insight

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def badge(page):
    return page.locator(".bell[data-unread-count]")


def nav(page, name):
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


def item(page, title):
    return page.locator("li.item", has_text=title)


def error_beside(page, field):
    """The error message an input points at with aria-describedby."""
    expect(field).to_have_attribute("aria-invalid", "true")
    return page.locator(f"#{field.get_attribute('aria-describedby')}")


# --- the notification center ----------------------------------------------------------


def test_badge_follows_activity_raised_by_another_user_without_a_reload(
    member, web, notify, page, login, api_client, drain
):
    """Bob edits Ada's insight through the API while her page is open: activity log →
    outbox → relay → Kafka → consumer → notification, and her badge shows it while its
    long-poll is held (the retry interval is set to a minute: only the held request can
    bring the change within the few seconds ``expect`` waits)."""
    notify(member, web, title="Checkout errors spiked")
    notify(member, web, title="Revenue dashboard was edited")
    notify(member, web, title="Old news", read_at=hours_ago(1))
    insight = InsightFactory(team=web, created_by=member, name="Weekly revenue")
    bob = MembershipFactory(user=UserFactory(username="bob", first_name="Bob"), team=web).user

    page.add_init_script("window.notiflowPollMs = 60000;")
    held: list[str | None] = []
    page.on(
        "request",
        lambda r: "unread_count/?wait=25" in r.url and held.append(r.headers.get("if-none-match")),
    )
    login(member)
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))

    expect(badge(page)).to_have_attribute("data-unread-count", "2")
    expect(page.locator(".bell .badge")).to_have_text("2")
    if not held:
        page.wait_for_event("request", lambda r: "unread_count/?wait=25" in r.url)
    assert held and all(held)  # held with If-None-Match: nothing to render until a change

    api_client.force_authenticate(bob)
    response = api_client.patch(
        f"/api/insights/{insight.pk}/", {"name": "Weekly revenue (EUR)"}, format="json"
    )
    assert response.status_code == 200, response.content
    drain(expected=2)  # the insight's "created" and Bob's edit
    assert Notification.objects.filter(recipient=member, actor=bob).count() == 1

    expect(badge(page)).to_have_attribute("data-unread-count", "3")
    expect(page.locator("#unread-status")).to_have_text("3 unread notifications")
    expect(page.get_by_text("New notifications arrived.")).to_be_visible()
    assert loads == []  # all of it without a reload
    shot(page, "center")


def test_mark_one_read_then_archive(member, web, notify, login):
    notify(member, web, title="First", last_seen_at=hours_ago(2), first_seen_at=hours_ago(2))
    second = notify(member, web, title="Second")
    page = login(member)
    expect(badge(page)).to_have_attribute("data-unread-count", "2")

    item(page, "Second").get_by_role("button", name="Mark “Second” read").click()

    expect(badge(page)).to_have_attribute("data-unread-count", "1")
    expect(item(page, "Second")).not_to_have_class(re.compile(r"\bunread\b"))
    expect(item(page, "First")).to_have_class(re.compile(r"\bunread\b"))
    item(page, "Second").get_by_role("button", name="Archive “Second”").click()
    expect(item(page, "Second")).to_have_count(0)
    second.refresh_from_db()
    assert second.read_at is not None and second.archived_at is not None
    page.reload()
    expect(item(page, "Second")).to_have_count(0)
    expect(item(page, "First")).to_have_count(1)


def test_mark_all_read_with_the_keyboard_alone(member, web, notify, login):
    for title in ("One", "Two", "Three"):
        notify(member, web, title=title)
    page = login(member)
    expect(badge(page)).to_have_attribute("data-unread-count", "3")

    page.locator("body").focus()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "mark-all-read":
            break
    expect(page.get_by_role("button", name="Mark all read")).to_be_focused()
    shot(page, "center-keyboard-focus")
    page.keyboard.press("Enter")

    expect(badge(page)).to_have_attribute("data-unread-count", "0")
    expect(page.locator("li.item.unread")).to_have_count(0)
    expect(page.locator(".bell .badge")).to_be_hidden()
    assert not Notification.objects.filter(recipient=member, read_at__isnull=True).exists()


def test_rolled_up_rows_days_and_why(member, web, notify, login):
    # Yesterday in the member's zone (UTC) at any time of day; 30 hours ago is two days
    # back between midnight and 06:00.
    yesterday_noon = (timezone.now() - timedelta(days=1)).replace(hour=12, minute=0)
    trigger = TriggerFactory(team=web, owner=member, name="Checkout errors")
    notify(
        member,
        web,
        title="checkout_error seen 1,000 times in 5 minutes",
        count=1000,
        trigger=trigger,
        event_name="checkout_error",
        reason="You own the trigger “Checkout errors”.",
        actor_name="",
    )
    notify(
        member,
        web,
        title="Ada Lovelace edited dashboard “Pricing”",
        first_seen_at=yesterday_noon,
        last_seen_at=yesterday_noon,
    )
    page = login(member)

    rolled = item(page, "checkout_error seen")
    expect(rolled.locator(".count")).to_have_text("×1,000")
    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    yesterday = page.locator("section.day", has=page.get_by_role("heading", name="Yesterday"))
    # The title names the actor; nothing names them again.
    expect(yesterday.locator("li.item .title")).to_have_text(
        "Unread: Ada Lovelace edited dashboard “Pricing”"
    )

    rolled.get_by_text("Why am I seeing this?").click()
    why = rolled.locator(".why-body")
    expect(why).to_contain_text("You own the trigger “Checkout errors”.")
    expect(why.get_by_role("link", name="Checkout errors")).to_have_attribute(
        "href", f"/triggers/{trigger.pk}/"
    )
    expect(why).to_contain_text("checkout_error")
    shot(page, "center-rollup")


def test_filters_by_team_and_unread_with_an_empty_state(member, web, notify, login):
    mobile = TeamFactory(name="Mobile")
    MembershipFactory(user=member, team=mobile)
    notify(member, web, title="Web thing")
    notify(member, mobile, title="Mobile thing", read_at=hours_ago(1))
    page = login(member)

    page.get_by_label("Team").select_option(label="Mobile")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("li.item")).to_have_text([re.compile("Mobile thing")])

    page.get_by_label("Unread only").check()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("li.item")).to_have_count(0)
    expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()

    page.get_by_role("link", name="Clear filters").click()
    expect(page.locator("li.item")).to_have_count(2)


def test_login_then_an_empty_center(member, page, login):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    shot(page, "login")
    login(member)
    expect(page.get_by_text("You're all caught up.")).to_be_visible()
    expect(badge(page)).to_have_attribute("data-unread-count", "0")
    shot(page, "center-empty")


# --- triggers -------------------------------------------------------------------------


def test_trigger_with_a_bad_regex_shows_the_error_beside_the_value_then_saves(member, web, login):
    page = login(member)
    nav(page, "Triggers").click()
    page.get_by_role("link", name="New trigger").click()
    page.wait_for_selector("form[data-ready]")

    page.get_by_label("Name", exact=True).fill("Checkout path errors")
    page.get_by_label("Event name").fill("checkout_error")
    page.get_by_role("button", name="Add filter").click()
    page.get_by_label("Filter 1 property").fill("path")
    page.get_by_label("Filter 1 operator").select_option("regex")
    value = page.get_by_label("Filter 1 value")
    value.fill("(unclosed")
    page.get_by_role("button", name="Create trigger").click()

    error = error_beside(page, value)
    expect(error).to_contain_text("does not compile")
    expect(value.locator("xpath=..").locator(".field-error")).to_have_count(1)  # same cell
    expect(page.locator("#error-summary")).to_be_focused()
    assert not Trigger.objects.exists()
    shot(page, "trigger-errors")

    value.fill("^/checkout")
    page.get_by_role("button", name="Create trigger").click()
    page.wait_for_url(re.compile(r"/triggers/\d+/\?created=1$"))
    trigger = Trigger.objects.get()
    assert trigger.config == {
        "event": "checkout_error",
        "filters": [{"property": "path", "operator": "regex", "value": "^/checkout"}],
    }
    assert trigger.owner == member and trigger.team == web

    sample = page.get_by_label("Sample event (JSON)")
    sample.fill(json.dumps({"event": "checkout_error", "properties": {"path": "/checkout/pay"}}))
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_have_text("✓ Matched")
    sample.fill(json.dumps({"event": "checkout_error", "properties": {"path": "/home"}}))
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_have_text("✗ Not matched")
    sample.fill("{not json")
    page.get_by_role("button", name="Send test").click()
    expect(error_beside(page, sample)).to_contain_text("Not valid JSON")
    shot(page, "trigger-edit")


def test_event_count_rollup_and_channels_errors_sit_beside_their_fields(member, web, login):
    page = login(member)
    page.goto("/triggers/new/")
    page.wait_for_selector("form[data-ready]")
    page.get_by_label("Name", exact=True).fill("Burst of checkout errors")
    page.get_by_label("Kind").select_option("event_count")
    page.get_by_label("Event name").fill("checkout_error")
    page.get_by_label("Within (minutes)").fill("5")
    page.get_by_role("button", name="Add channel").click()
    page.get_by_label("Channel 2 type").select_option("slack")
    page.get_by_label("Roll-up").check()
    page.get_by_role("button", name="Create trigger").click()

    count = page.get_by_label("At least this many events")
    # one submit reports every problem: the body's fields and the kind's config together
    expect(error_beside(page, page.get_by_label("Channel 2 slack channel"))).to_contain_text(
        "slack needs a channel"
    )
    expect(error_beside(page, page.get_by_label("Window (seconds)"))).to_contain_text(
        "is required for rollup"
    )
    expect(error_beside(page, count)).to_contain_text("whole number")
    shot(page, "trigger-channel-errors")

    page.get_by_label("Channel 2 slack channel").fill("#alerts")
    page.get_by_label("Window (seconds)").fill("300")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.locator(".field-error")).to_have_count(1)  # the new answer has rendered
    expect(error_beside(page, count)).to_contain_text("whole number")

    count.fill("100")
    page.get_by_role("button", name="Create trigger").click()
    page.wait_for_url(re.compile(r"/triggers/\d+/"))
    trigger = Trigger.objects.get()
    assert trigger.kind == "event_count"
    assert trigger.config["count"] == 100 and trigger.config["window_minutes"] == 5
    assert trigger.channels == [{"type": "in_app"}, {"type": "slack", "target": "#alerts"}]
    assert trigger.delivery == {"mode": "rollup", "window_seconds": 300}

    # editing keeps what it was given and saves in place
    expect(page.get_by_label("Window (seconds)")).to_have_value("300")
    page.get_by_label("Digest").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#save-status")).to_have_text("Saved.")
    trigger.refresh_from_db()
    assert trigger.delivery == {"mode": "digest"}


def test_scheduled_kinds_and_the_trigger_list(member, web, login):
    (insight,) = Insight.objects.bulk_create([Insight(team=web, name="Signups", created_by=member)])
    page = login(member)
    page.goto("/triggers/new/")
    page.wait_for_selector("form[data-ready]")
    page.get_by_label("Name", exact=True).fill("Signups drop")
    page.get_by_label("Kind").select_option("insight_threshold")
    expect(page.get_by_label("Event name")).to_be_hidden()
    page.get_by_label("Insight", exact=True).select_option(label="Signups")
    page.get_by_label("Alert below").fill("10")
    page.get_by_label("Check every (minutes)").fill("30")
    page.get_by_role("button", name="Create trigger").click()
    page.wait_for_url(re.compile(r"/triggers/\d+/"))
    trigger = Trigger.objects.get()
    assert trigger.config == {
        "insight_id": insight.pk,
        "lower": 10,
        "change": "absolute",
        "interval_minutes": 30,
    }
    page.get_by_role("button", name="Send test").click()
    expect(error_beside(page, page.get_by_label("Sample event (JSON)"))).to_contain_text(
        "checked on a schedule"
    )

    TriggerFactory(team=web, owner=member, name="Checkout errors", enabled=False)
    nav(page, "Triggers").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Checkout errors")
    expect(rows.nth(0)).to_contain_text("Disabled")
    expect(rows.nth(1)).to_contain_text("Signups drop")
    expect(rows.nth(1)).to_contain_text("Insight crosses a threshold")
    expect(rows.nth(1)).to_contain_text("Instant")
    expect(rows.nth(1)).to_contain_text("Web")
    shot(page, "triggers")


def test_a_scheduled_trigger_opens_with_its_declared_fields_filled_and_saves_them(
    member, web, login
):
    """The kind's fields are drawn from its declaration: editing shows the stored config
    in them, and a save sends back what they hold."""
    left, kept = Cohort.objects.bulk_create(
        [
            Cohort(team=web, name="Churned", created_by=member, members=[]),
            Cohort(team=web, name="Power users", created_by=member, members=[]),
        ]
    )
    trigger = TriggerFactory(
        team=web,
        owner=member,
        name="Power users leave",
        kind="cohort_membership",
        config={"cohort_id": kept.pk, "direction": "exit", "interval_minutes": 60},
    )
    page = login(member)
    page.goto(f"/triggers/{trigger.pk}/")
    page.wait_for_selector("form[data-ready]")
    expect(page.get_by_label("Cohort", exact=True)).to_have_value(str(kept.pk))
    expect(page.get_by_label("When someone")).to_have_value("exit")
    expect(page.get_by_label("Check every (minutes)")).to_have_value("60")
    expect(page.get_by_label("Insight", exact=True)).to_be_hidden()
    shot(page, "trigger-cohort-edit")
    page.get_by_label("Cohort", exact=True).select_option(label="Churned")
    page.get_by_label("When someone").select_option("entry")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#save-status")).to_have_text("Saved.")
    trigger.refresh_from_db()
    assert trigger.config == {"cohort_id": left.pk, "direction": "entry", "interval_minutes": 60}


# --- preferences ----------------------------------------------------------------------


def test_preferences_grid_saves_and_critical_switches_stay_on(member, web, login):
    for status, error in (("sent", ""), ("skipped", "no SMTP server is configured")):
        Delivery.objects.create(
            idempotency_key=f"browser-test-{status}",
            channel="email",
            destination="ada@example.com",
            team=web,
            recipient=member,
            message={"title": f"Checkout errors spiked ({status})"},
            status=status,
            last_error=error,
        )
    page = login(member)
    nav(page, "Preferences").click()

    activity_email = page.get_by_label("Activity on your work by Email")
    expect(activity_email).to_be_checked()
    critical = page.locator("#channel-grid input[data-locked]")
    expect(critical.first).to_be_disabled()
    expect(critical.first).to_be_checked()
    expect(page.get_by_text(re.compile("can't be turned off"))).to_be_visible()

    activity_email.uncheck()
    page.get_by_label("Send me a digest").select_option("weekly")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_label("From").fill("22:00")
    page.get_by_label("Until").fill("07:00")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#save-status")).to_have_text("Saved.")
    expect(page.locator("#next-digest")).to_contain_text("Next digest:")

    page.reload()
    expect(page.get_by_label("Activity on your work by Email")).not_to_be_checked()
    expect(page.get_by_label("Send me a digest")).to_have_value("weekly")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")
    expect(page.get_by_label("From")).to_have_value("22:00")
    preference = Preference.objects.get(user=member)
    assert preference.channels["activity"]["email"] is False
    assert preference.digest_cadence == "weekly"
    expect(page.locator("#channel-grid input[data-locked]").first).to_be_disabled()
    deliveries = page.locator("#deliveries tbody tr")
    expect(deliveries).to_have_count(2)
    expect(deliveries.filter(has_text="skipped")).to_contain_text("no SMTP server is configured")
    shot(page, "preferences")


def test_unsubscribe_link_lands_on_preferences_already_applied(member, login):
    page = login(member)
    token = unsubscribe_token(user_id=member.pk, category="activity", channel="email")
    page.goto(f"/unsubscribe/{token}/")

    page.wait_for_url(re.compile(r"/preferences/\?unsubscribed=activity:email$"))
    expect(page.get_by_role("status").filter(has_text="unsubscribed")).to_have_text(
        re.compile("You're unsubscribed from activity emails.")
    )
    expect(page.get_by_label("Activity on your work by Email")).not_to_be_checked()

    shot(page, "preferences-unsubscribed")
    page.goto("/preferences/?unsubscribed=alert:email")
    expect(page.get_by_text("You're unsubscribed from alert emails.")).to_be_visible()
