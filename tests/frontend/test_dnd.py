"""The header's do-not-disturb control in a real browser: set from any page, shown in the
header while on (also after moving to another page), a picked time read in the person's
zone, refusals shown, and off again."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from notifications.models import Preference
from notifications.tasks import release_held
from tests.factories import TriggerFactory
from tests.frontend.conftest import shot
from workspace.models import UserProfile

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def state(page):
    return page.locator("#dnd-state")


def open_menu(page):
    page.locator("#dnd summary").click()


def dnd_until(user):
    return Preference.objects.get(user=user).dnd_until


def test_do_not_disturb_for_an_hour_from_the_header_shows_on_every_page_then_off(member, login):
    page = login(member)
    expect(state(page)).to_have_text("Do not disturb")
    open_menu(page)
    shot(page, "dnd-menu")
    page.get_by_role("button", name="For 1 hour").click()
    expect(state(page)).to_have_text(re.compile(r"^Do not disturb until \d\d:\d\d UTC$"))
    until = dnd_until(member)
    assert timedelta(minutes=59) < until - timezone.now() <= timedelta(hours=1)
    assert state(page).inner_text() == f"Do not disturb until {until:%H:%M} UTC"

    page.goto("/triggers/")  # the header shows it on every page, rendered by the server
    expect(state(page)).to_have_text(f"Do not disturb until {until:%H:%M} UTC")
    shot(page, "dnd-on")
    expect(page.locator("#dnd")).to_have_attribute("data-on", "")

    open_menu(page)
    page.get_by_role("button", name="Turn off").click()
    expect(state(page)).to_have_text("Do not disturb")
    assert dnd_until(member) is None
    page.reload()
    expect(state(page)).to_have_text("Do not disturb")


def test_a_picked_time_is_read_in_the_persons_zone_and_the_past_is_refused(member, login):
    UserProfile.objects.update_or_create(user=member, defaults={"timezone": "Asia/Tokyo"})
    page = login(member)
    open_menu(page)
    page.get_by_label("Ends at (Asia/Tokyo)").fill("2020-01-01T09:00")
    page.get_by_role("button", name="Set").click()
    expect(page.locator("#dnd-error")).to_contain_text("must be in the future")
    expect(state(page)).to_have_text("Do not disturb")

    tokyo = ZoneInfo("Asia/Tokyo")
    picked = (timezone.now().astimezone(tokyo) + timedelta(days=2)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    page.get_by_label("Ends at (Asia/Tokyo)").fill(picked.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Set").click()
    expect(state(page)).to_have_text(
        re.compile(r"^Do not disturb until \w{3} \d\d \w{3} 09:30 Asia/Tokyo$")
    )
    assert dnd_until(member) == picked
    assert dnd_until(member).astimezone(tokyo).replace(tzinfo=None) == datetime.combine(
        picked.date(), picked.time()
    )


def test_a_push_held_by_do_not_disturb_shows_why_in_my_deliveries_and_the_center(
    member, web, login, api_client, drain, smtp_server
):
    member.email = "ada@example.com"
    member.save(update_fields=["email"])
    TriggerFactory(
        team=web,
        owner=member,
        name="Checkout errors",
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "email"}],
        subscribers=[member],
    )
    page = login(member)
    open_menu(page)
    page.get_by_role("button", name="For 1 hour").click()
    expect(state(page)).to_have_text(re.compile("^Do not disturb until"))
    response = api_client.post(
        "/api/ingest/",
        {"api_key": web.api_token, "batch": [{"event": "checkout_error", "distinct_id": "u1"}]},
        format="json",
    )
    assert response.status_code == 202
    drain(expected=1)
    assert smtp_server.messages == []

    page.goto("/preferences/")
    row = page.locator("#deliveries tr", has_text="Checkout errors")
    until = dnd_until(member)
    expect(row).to_contain_text("held")
    expect(row).to_contain_text(f"held: do not disturb until {until:%H:%M} UTC")

    page.goto("/")  # the center says what is held, while it is
    expect(page.locator("#held-status")).to_contain_text(f"1 held until {until:%H:%M} UTC")
    release_held(now=until.isoformat())
    assert len(smtp_server.messages) == 1
    page.reload()
    expect(page.locator("#held-status")).to_have_count(0)


def test_categories_ticked_on_the_preferences_page_pass_quiet_hours(member, web, login):
    page = login(member)
    page.goto("/preferences/")
    expect(page.get_by_role("button", name="Save preferences")).to_be_enabled()  # loaded
    page.get_by_label("From").fill("22:00")
    page.get_by_label("Until").fill("07:00")
    page.locator('[name="critical_categories"][value="alert"]').check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator("#save-status")).to_have_text("Saved.")
    assert Preference.objects.get(user=member).critical_categories == ["alert"]
    page.reload()
    expect(page.locator('[name="critical_categories"][value="alert"]')).to_be_checked()
    expect(page.locator('[name="critical_categories"][value="activity"]')).not_to_be_checked()
